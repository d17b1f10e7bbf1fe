// LoRA adapters in PEFT's on-disk format, so `PeftModel.from_pretrained`
// loads what lora-sweep trains and lora-sweep loads what PEFT trains:
//
//   adapter_config.json        peft_type "LORA", task_type, r, lora_alpha,
//                              lora_dropout, target_modules, bias,
//                              fan_in_fan_out, use_rslora, modules_to_save,
//                              base_model_name_or_path (+ rank_pattern /
//                              alpha_pattern when ranks differ by layer)
//   adapter_model.safetensors  base_model.model.<module path>.lora_A.weight
//                              [r, in] and ...lora_B.weight [out, r]; with
//                              task_type SEQ_CLS also the head,
//                              base_model.model.classifier.{dense,out_proj}.*
//
// GPT-2's q,v-only update inside the fused c_attn has no PEFT form: it is
// exported as a rank-2r c_attn adapter (A = [A_q; A_v], B block-placed with
// zero rows for k, lora_alpha = 2 alpha), which PEFT computes identically.
// The seed's linear-on-pooler head has no PEFT equivalent either: the
// adapter is exported as task_type FEATURE_EXTRACTION and the head (with the
// pooler, which real checkpoints lack and which is therefore random) goes to
// lora_sweep_head.safetensors beside it, in our own format.
#ifndef LORA_SWEEP_LORA_CORE_PEFT_ADAPTER_H_
#define LORA_SWEEP_LORA_CORE_PEFT_ADAPTER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lora_core/task_model.h"
#include "lora_core/tensor_io.h"

namespace lora::core {

inline constexpr char kPeftKeyPrefix[] = "base_model.model.";
inline constexpr char kOwnHeadFile[] = "lora_sweep_head.safetensors";

// adapter_config.json, as read or about to be written.
struct PeftAdapterConfig {
  std::string task_type;  // "SEQ_CLS", "CAUSAL_LM", "FEATURE_EXTRACTION"
  int64_t r = 0;
  double lora_alpha = 0;
  double lora_dropout = 0;
  std::vector<std::string> target_modules;
  std::string bias = "none";
  bool fan_in_fan_out = false;
  bool use_rslora = false;
  std::vector<std::string> modules_to_save;
  std::string base_model_name_or_path;
  // Per-module overrides keyed by module name suffix (PEFT semantics).
  std::map<std::string, int64_t> rank_pattern;
  std::map<std::string, double> alpha_pattern;
};

struct PeftAdapter {
  PeftAdapterConfig config;
  // adapter_model.safetensors, keys as in the file.
  NamedTensors tensors;
  // lora_sweep_head.safetensors when present (model keys), else empty.
  NamedTensors own_head;
};

// The adapter_config.json text (pretty-printed JSON).
std::string PeftAdapterConfigToJson(const PeftAdapterConfig& config);

// Parses adapter_config.json. InvalidArgument naming `source` and the field
// for malformed JSON, a peft_type other than LORA, or ill-typed fields.
absl::StatusOr<PeftAdapterConfig> ParsePeftAdapterConfig(
    const std::string& json_text, const std::string& source);

// The adapter of `model` (LoRA matrices, its head where the task type
// carries it) in PEFT's form, without writing anything.
absl::StatusOr<PeftAdapter> MakePeftAdapter(const TaskModel& model);

// Writes MakePeftAdapter's result into `directory` (created if needed):
// adapter_config.json, adapter_model.safetensors and, for the seed's head,
// lora_sweep_head.safetensors. Files are written atomically.
absl::Status ExportPeftAdapter(const TaskModel& model,
                               const std::string& directory);

// Reads an adapter folder. NotFound if adapter_config.json or
// adapter_model.safetensors is missing.
absl::StatusOr<PeftAdapter> ReadPeftAdapter(const std::string& directory);

// Adds the adapter's LoRA matrices to `model` (which must have no LoRA yet)
// and copies its weights, the head (modules_to_save or our own head file)
// included; then marks LoRA and head trainable. Ranks come from the tensors'
// shapes and alphas from alpha_pattern or lora_alpha. InvalidArgument naming
// the key for a module the model lacks, an unpaired A or B, shapes that do
// not fit, or a model that already has LoRA; the model is unchanged then.
absl::Status ApplyPeftAdapter(const PeftAdapter& adapter, TaskModel& model);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_PEFT_ADAPTER_H_
