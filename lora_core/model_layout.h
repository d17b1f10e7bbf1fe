// What a model built from a ModelConfig consists of, without LibTorch: its
// head, its linear layers (by Hugging Face module path), where LoRA goes for
// a list of PEFT-style target modules, and exact parameter counts. The
// coordinator and loractl use it to show counts before anything trains; the
// LibTorch models use the same placement rules, and tests check that both
// agree for every built-in config.
#ifndef LORA_SWEEP_LORA_CORE_MODEL_LAYOUT_H_
#define LORA_SWEEP_LORA_CORE_MODEL_LAYOUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lora_core/model_config.h"

namespace lora::core {

enum class HeadKind {
  // Bare RobertaModel (with pooler) or GPT2Model: outputs hidden states.
  kNone,
  // The seed's head: one linear layer on the pooled output ("classifier",
  // H*L + L parameters: 1,538 for roberta-base with 2 labels). The pooler is
  // part of the frozen base.
  kLinearOnPooler,
  // Hugging Face's RobertaClassificationHead (classifier.dense and
  // classifier.out_proj on the <s> token; no pooler). PEFT's SEQ_CLS head.
  kRobertaClassification,
  // RobertaForMaskedLM's head (lm_head.dense, lm_head.layer_norm, a decoder
  // tied to the word embeddings, lm_head.bias); no pooler. For pretraining.
  kRobertaMaskedLm,
  // GPT2LMHeadModel's lm_head, tied to transformer.wte: no own parameters.
  kGpt2LanguageModel,
};

// Names as used in sweep files and run configs: "none", "linear_pooled",
// "roberta_classification", "mlm", "lm".
std::string HeadKindName(HeadKind head);
absl::StatusOr<HeadKind> ParseHeadKind(absl::string_view name);

// Whether `head` can sit on `architecture` (e.g. "lm" needs GPT-2).
bool HeadFitsArchitecture(HeadKind head, Architecture architecture);

// The key prefix of the backbone: "roberta." or "transformer.", as in
// Hugging Face's task models. Checkpoints of bare models (keys without the
// prefix) load too; see hf_checkpoint.h.
std::string BackbonePrefix(Architecture architecture);

// What the optimizer updates.
enum class TrainableSet {
  kLora,      // LoRA matrices + head (+ biases, see ModelSpec::bias).
  kFull,      // Every parameter (full fine-tuning, pretraining).
  kHeadOnly,  // The head alone (linear probe baseline).
};

struct LoraSpec {
  // 0 means no LoRA.
  int64_t rank = 0;
  // PEFT-style names: a layer is adapted when its module path equals a
  // target or ends with "." + target (head layers are never adapted; they
  // train in full). GPT-2 also accepts "query", "key" and "value": the
  // matching third of the fused c_attn projection only (loralib's
  // MergedLinear, as in the LoRA paper), while "c_attn" adapts the whole
  // fused projection (PEFT's default).
  std::vector<std::string> target_modules;
  // Scaling numerator: the update is scaled by alpha / rank (alpha /
  // sqrt(rank) with use_rslora). Does not change parameter counts.
  double alpha = 8.0;
  // Dropout on the LoRA path.
  double dropout = 0.0;
  bool use_rslora = false;
};

struct ModelSpec {
  HeadKind head = HeadKind::kNone;
  // Classification heads only.
  int64_t num_labels = 2;
  LoraSpec lora;
  TrainableSet trainable = TrainableSet::kLora;
  // PEFT's `bias`: "none", "all" (every parameter named bias, LayerNorm
  // included) or "lora_only" (biases of adapted layers). kLora only.
  std::string bias = "none";
};

// A linear layer of the model (nn.Linear, or GPT-2's Conv1D).
struct LinearLayer {
  // Full Hugging Face module path, e.g.
  // "roberta.encoder.layer.0.attention.self.query" or
  // "transformer.h.3.attn.c_attn".
  std::string path;
  int64_t in_features = 0;
  int64_t out_features = 0;
  // Weight stored in x out (GPT-2's Conv1D) instead of out x in.
  bool fan_in_fan_out = false;
  // Part of the task head (never adapted; trained in full).
  bool in_head = false;
  // Equal-sized output blocks: 3 for GPT-2's fused q,k,v c_attn, else 1.
  int segments = 1;
};

// Every linear layer of the model, in module order, head layers last
// (`num_labels` sizes classification outputs). Layers tied to an embedding
// (decoders of LM heads) are not listed.
std::vector<LinearLayer> LinearLayersOf(const ModelConfig& config,
                                        HeadKind head, int64_t num_labels = 2);

// Where LoRA goes.
struct LoraPlacement {
  LinearLayer layer;
  // Empty: the whole layer. Otherwise one flag per segment (e.g. {true,
  // false, true} for q and v inside GPT-2's c_attn).
  std::vector<bool> enabled_segments;
};

// Resolves target module names against the model's layers. InvalidArgument
// if a target matches no layer (naming the target and the layer names that
// exist), if "c_attn" is combined with "query"/"key"/"value" on GPT-2, or if
// rank < 0. An empty result when rank is 0.
absl::StatusOr<std::vector<LoraPlacement>> PlaceLora(const ModelConfig& config,
                                                     HeadKind head,
                                                     const LoraSpec& lora);

// LoRA parameters of one placement at `rank`: r*(in+out) for a whole layer,
// r*in + r*(out/segments) per enabled segment otherwise.
int64_t LoraParameterCount(const LoraPlacement& placement, int64_t rank);

struct ParameterCounts {
  int64_t base = 0;  // Backbone, pooler included where the head uses one.
  int64_t lora = 0;
  int64_t head = 0;
  int64_t total = 0;  // base + lora + head
  int64_t trainable = 0;
};

// Exact counts for the model `spec` describes on `config`, as the LibTorch
// modules register them (tied weights counted once). Errors as PlaceLora, or
// InvalidArgument for a head that does not fit the architecture, a
// classification head with num_labels < 1, or an unknown bias mode.
absl::StatusOr<ParameterCounts> CountParameters(const ModelConfig& config,
                                                const ModelSpec& spec);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_MODEL_LAYOUT_H_
