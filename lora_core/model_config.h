// Model configurations for RoBERTa and GPT-2, without LibTorch: the
// coordinator and loractl use this library to validate sweeps and to count
// parameters, and the LibTorch models in lora_core build from it.
//
// Field names follow Hugging Face's RobertaConfig; GPT-2's config.json keys
// (n_embd, n_layer, ...) are mapped onto them when read.
#ifndef LORA_SWEEP_LORA_CORE_MODEL_CONFIG_H_
#define LORA_SWEEP_LORA_CORE_MODEL_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lora::core {

enum class Architecture {
  kRoberta,  // Bidirectional encoder; HF model_type "roberta".
  kGpt2,     // Causal decoder with Conv1D (in x out) weights; "gpt2".
};

// "roberta" or "gpt2" (HF model_type).
std::string ArchitectureName(Architecture architecture);

// The vocabulary a RoBERTa config's token ids refer to.
inline constexpr char kRealRobertaVocabulary[] = "roberta";
// Offline RoBERTa vocabulary derived from GPT-2's BPE files: <s>=0, <pad>=1,
// </s>=2, <unk>=3, GPT-2 id + 4, <mask> last (50261). Its ids differ from real
// roberta-base's, so it must never be paired with real roberta-base weights.
inline constexpr char kGpt2DerivedVocabulary[] = "gpt2-derived";

struct ModelConfig {
  // Built-in name ("roberta-base") or the checkpoint folder's name.
  std::string name;
  Architecture architecture = Architecture::kRoberta;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t intermediate_size = 0;
  // RoBERTa: positions including the padding offset (514 for base);
  // GPT-2: n_positions.
  int64_t max_position_embeddings = 0;
  // RoBERTa: 1. GPT-2 has no token types: 0.
  int64_t type_vocab_size = 0;
  // RoBERTa: 1. GPT-2 has no padding token: -1.
  int64_t pad_token_id = -1;
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;
  double layer_norm_eps = 1e-5;
  // Dropout after embeddings / on residual branches / on attention weights.
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  double embedding_dropout_prob = 0.1;
  // "gelu" (exact, RoBERTa) or "gelu_new" (tanh approximation, GPT-2).
  std::string hidden_act = "gelu";
  double initializer_range = 0.02;
  // RoBERTa only: kRealRobertaVocabulary or kGpt2DerivedVocabulary. Written
  // to config.json as "lora_sweep_vocabulary".
  std::string vocabulary = kRealRobertaVocabulary;
};

// Reads a Hugging Face config.json text. `source` names the file in errors,
// e.g. "ckpt/config.json: hidden_size: expected a positive integer, got -3".
// Fails with InvalidArgument on malformed JSON, an unknown model_type, missing
// or ill-typed fields, or inconsistent sizes (hidden_size not divisible by
// num_attention_heads).
absl::StatusOr<ModelConfig> ParseModelConfigJson(absl::string_view json_text,
                                                 absl::string_view source);

// Reads `<directory>/config.json`; the config's name is the folder's name.
// NotFound if there is no such file.
absl::StatusOr<ModelConfig> LoadModelConfigFromDirectory(
    const std::string& directory);

// The config as Hugging Face writes it (model_type, architectures, and the
// architecture's own key names), pretty-printed. `architecture` names the
// task class ("RobertaForSequenceClassification"; default: the bare model)
// and `num_labels` > 0 adds id2label / label2id.
std::string ModelConfigToJson(const ModelConfig& config,
                              const std::string& architecture = "",
                              int64_t num_labels = 0);

// Built-in configs: "roberta-base", "roberta-large", "gpt2", "gpt2-medium"
// (Hugging Face's), "roberta-tiny" and "gpt2-tiny" (tests), "roberta-mini" and
// "gpt2-mini" (offline demo and pretraining). The tiny and mini RoBERTa
// configs use the GPT-2-derived vocabulary.
// NotFound, listing the known names, for anything else.
absl::StatusOr<ModelConfig> BuiltinModelConfig(absl::string_view name);
std::vector<std::string> BuiltinModelNames();

// The longest sequence the model can take, in tokens including special
// tokens. RoBERTa: max_position_embeddings - pad_token_id - 1 (positions start
// after the padding index), i.e. 512 for roberta-base. GPT-2: n_positions.
int64_t LongestUsableSequence(const ModelConfig& config);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_MODEL_CONFIG_H_
