// TaskModel: a RoBERTa or GPT-2 backbone with its task head and LoRA, built
// from a ModelConfig and a ModelSpec (model_layout.h). Parameter names equal
// Hugging Face's keys for the matching task model ("roberta.encoder...",
// "classifier.out_proj.weight", "transformer.h.0.attn.c_attn.weight", ...),
// with "lora_A" / "lora_B" beside the adapted layers' "weight".
//
// The analytic counts of model_layout.h and CountModuleParameters() agree
// for every config (tested). Not thread-safe, as any torch::nn module.
#ifndef LORA_SWEEP_LORA_CORE_TASK_MODEL_H_
#define LORA_SWEEP_LORA_CORE_TASK_MODEL_H_

#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "lora_core/gpt2.h"
#include "lora_core/lora_linear.h"
#include "lora_core/model_config.h"
#include "lora_core/model_layout.h"
#include "lora_core/roberta.h"

namespace lora::core {

struct TaskModelOutput {
  // Classification: [batch, num_labels]. MLM / LM: [batch, seq, vocab].
  // kNone: undefined.
  at::Tensor logits;
  // Last hidden state [batch, seq, hidden].
  at::Tensor hidden;
  // Pooler output [batch, hidden] when the model has a pooler.
  at::Tensor pooled;
};

class TaskModel : public torch::nn::Module {
 public:
  // Builds the backbone and head with Hugging Face's random initialisation
  // (from the global generator: call at::manual_seed first), adds LoRA where
  // `spec.lora` places it and marks the trainable parameters. Errors as
  // CountParameters (model_layout.h): a head that does not fit, targets that
  // match nothing, a bad bias mode.
  static absl::StatusOr<std::shared_ptr<TaskModel>> Create(
      const ModelConfig& config, const ModelSpec& spec);

  // input_ids, attention_mask: [batch, seq] int64 (1 = token, 0 = padding).
  // For the masked-LM head, `logit_positions` ([batch, seq] bool) limits the
  // vocabulary logits to those positions ([n, vocab], in row-major order):
  // pretraining scores only the ~15% masked tokens, and the full [batch,
  // seq, vocab] tensor would cost most of the step.
  TaskModelOutput forward(const at::Tensor& input_ids,
                          const at::Tensor& attention_mask,
                          const at::Tensor& logit_positions = {});

  const ModelConfig& config() const { return config_; }
  const ModelSpec& spec() const { return spec_; }

  // Records LoRA added from outside Create (an applied adapter) so that
  // spec() describes the model again.
  void set_lora_spec(const LoraSpec& lora, const std::string& bias) {
    spec_.lora = lora;
    spec_.bias = bias;
  }

  // Counts from the registered parameters: names containing "lora_" are
  // LoRA, names under "classifier." or "lm_head." are head, the rest base;
  // trainable = requires_grad.
  ParameterCounts CountModuleParameters() const;

  // Adapted layers with their full module paths, in module order.
  std::vector<std::pair<std::string, LoraLinear>> LoraLayers() const;

  // Every LoraLinear with its full module path (adapted or not).
  std::vector<std::pair<std::string, LoraLinear>> LinearLayers() const;

  // Sets requires_grad for `set` (and spec().bias): see TrainableSet.
  void SetTrainable(TrainableSet set);

  // Merges / unmerges every adapted layer (see LoraLinear::merge).
  void MergeLora();
  void UnmergeLora();

  // The parameters the optimizer should update (requires_grad), by name.
  std::vector<std::pair<std::string, at::Tensor>> TrainableParameters() const;

  // Backbones; exactly one is non-null.
  RobertaModel roberta{nullptr};
  Gpt2Model transformer{nullptr};

 private:
  TaskModel(const ModelConfig& config, const ModelSpec& spec);
  absl::Status AddLora();

  ModelConfig config_;
  ModelSpec spec_;
  LoraLinear linear_classifier_{nullptr};
  RobertaClassificationHead classification_head_{nullptr};
  RobertaLmHead lm_head_{nullptr};
};

// True for parameter names of the task head ("classifier.*", "lm_head.*").
bool IsHeadParameter(const std::string& name);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_TASK_MODEL_H_
