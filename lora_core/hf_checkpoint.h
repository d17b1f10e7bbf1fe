// Hugging Face checkpoint folders (config.json + model.safetensors) in and
// out of TaskModel.
//
// Loading matches keys by name: a checkpoint of a bare model ("encoder...",
// "h.0...") loads into the task model's backbone ("roberta.encoder...",
// "transformer.h.0..."), and a task checkpoint's "roberta." / "transformer."
// keys load as they are. Like Hugging Face, loading ignores known buffers
// (position_ids, GPT-2's attn.bias / attn.masked_bias) and tied aliases
// (lm_head.weight, lm_head.decoder.*), and reports missing keys (parameters
// left at their fresh initialisation: the pooler of a real roberta-base
// checkpoint, a new head) and unexpected keys (checkpoint tensors the model
// has no place for, e.g. lm_head.* when loading into a classifier).
#ifndef LORA_SWEEP_LORA_CORE_HF_CHECKPOINT_H_
#define LORA_SWEEP_LORA_CORE_HF_CHECKPOINT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lora_core/model_layout.h"
#include "lora_core/task_model.h"
#include "lora_core/tensor_io.h"

namespace lora::core {

struct LoadReport {
  // Where the weights came from (folder or file).
  std::string source;
  // Model parameters the checkpoint did not provide, left as initialised
  // (LoRA matrices are never listed: they are new by definition).
  std::vector<std::string> missing_keys;
  // Checkpoint tensors the model has no parameter for.
  std::vector<std::string> unexpected_keys;
  // Checkpoint tensors skipped on purpose (buffers, tied aliases).
  std::vector<std::string> ignored_keys;
  // Parameters loaded.
  int64_t loaded = 0;

  // The report in Hugging Face's words, one paragraph per non-empty list,
  // noting that a missing pooler is initialised N(0, initializer_range) from
  // the seeded generator, as Hugging Face does.
  std::string ToString() const;
};

// Copies `checkpoint` into the model's parameters (converting dtypes to the
// parameter's). InvalidArgument naming the key and both shapes on a shape
// mismatch; the model is left unchanged on error (shapes are checked before
// anything is copied).
absl::StatusOr<LoadReport> LoadStateDict(TaskModel& model,
                                         const NamedTensors& checkpoint,
                                         const std::string& source);

struct PretrainedModel {
  std::shared_ptr<TaskModel> model;
  LoadReport report;
};

// Builds a TaskModel for `spec` from `<directory>/config.json` and loads
// `<directory>/model.safetensors` into it. Seed the global generator first:
// fresh parameters (pooler, head, LoRA A) draw from it. NotFound if either file
// is missing; errors of the config, the file or LoadStateDict otherwise.
absl::StatusOr<PretrainedModel> LoadPretrained(const std::string& directory,
                                               const ModelSpec& spec);

// Writes `<directory>/config.json` and `<directory>/model.safetensors` with
// Hugging Face's keys for the model's task class (bare models without the
// backbone prefix). LoRA matrices are left out unless `merge_lora` folds
// them into the base weights (the model itself is not changed). Creates the
// folder; files are written atomically.
absl::Status SavePretrained(const TaskModel& model,
                            const std::string& directory, bool merge_lora);

// The model's parameters under their Hugging Face keys, as SavePretrained
// writes them.
NamedTensors HuggingFaceStateDict(const TaskModel& model, bool merge_lora);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_HF_CHECKPOINT_H_
