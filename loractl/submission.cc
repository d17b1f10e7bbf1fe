#include "loractl/submission.h"

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "sweep/artifact_manifest.h"

namespace lora::loractl {
namespace {

google::protobuf::Value JsonToValue(const nlohmann::json& json) {
  google::protobuf::Value value;
  if (json.is_number()) {
    value.set_number_value(json.get<double>());
  } else if (json.is_string()) {
    value.set_string_value(json.get<std::string>());
  } else if (json.is_boolean()) {
    value.set_bool_value(json.get<bool>());
  } else if (json.is_array()) {
    auto* list = value.mutable_list_value();
    for (const nlohmann::json& item : json) {
      *list->add_values() = JsonToValue(item);
    }
  } else if (json.is_object()) {
    auto* fields = value.mutable_struct_value()->mutable_fields();
    for (const auto& [key, item] : json.items()) {
      (*fields)[key] = JsonToValue(item);
    }
  } else {
    value.set_null_value(google::protobuf::NULL_VALUE);
  }
  return value;
}

v1::AmpMode ToProto(core::AmpMode mode) {
  switch (mode) {
    case core::AmpMode::kBf16:
      return v1::AMP_MODE_BF16;
    case core::AmpMode::kFp16:
      return v1::AMP_MODE_FP16;
    default:
      return v1::AMP_MODE_OFF;
  }
}

v1::RunConfig ToProto(const core::TrainConfig& config) {
  v1::RunConfig out;
  out.set_model(config.model);
  if (sweep::IsArtifactId(config.model))
    out.set_model_artifact_id(config.model);
  out.set_task(core::DataTaskName(config.task));
  if (sweep::IsArtifactId(config.data_dir)) {
    out.set_dataset_artifact_id(config.data_dir);
  }
  out.set_head(core::HeadKindName(config.head));
  v1::LoraConfig& lora = *out.mutable_lora();
  lora.set_rank(static_cast<int32_t>(config.lora.rank));
  lora.set_alpha(config.lora.alpha);
  lora.set_dropout(config.lora.dropout);
  for (const std::string& target : config.lora.target_modules) {
    lora.add_target_modules(target);
  }
  lora.set_use_rslora(config.lora.use_rslora);
  out.set_epochs(static_cast<int32_t>(config.epochs));
  out.set_batch_size(static_cast<int32_t>(config.batch_size));
  out.set_grad_accum_steps(static_cast<int32_t>(config.grad_accum_steps));
  out.set_lr(config.lr);
  out.set_weight_decay(config.weight_decay);
  out.set_warmup_ratio(config.warmup_ratio);
  out.set_max_grad_norm(config.max_grad_norm);
  out.set_label_smoothing(config.label_smoothing);
  out.set_max_seq_len(static_cast<int32_t>(config.max_seq_len));
  out.set_amp(ToProto(config.amp));
  out.set_seed(static_cast<int64_t>(config.seed));
  out.set_early_stopping_patience(
      static_cast<int32_t>(config.early_stopping_patience));
  out.set_full_finetune(config.trainable == core::TrainableSet::kFull);
  out.set_head_only(config.trainable == core::TrainableSet::kHeadOnly);
  out.set_num_labels(static_cast<int32_t>(config.num_labels));
  out.mutable_resources()->set_device(
      config.device == "cuda" ? v1::DEVICE_KIND_CUDA : v1::DEVICE_KIND_CPU);
  return out;
}

}  // namespace

absl::StatusOr<PreparedSweep> PrepareSweep(const std::string& path,
                                           int64_t max_runs) {
  PreparedSweep prepared;
  prepared.source = path;
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read the sweep file: ", text.status().message()));
  }
  prepared.text = *std::move(text);
  sweep::SweepValidationOptions options = sweep::LocalValidationOptions();
  options.max_runs = max_runs;
  LORA_ASSIGN_OR_RETURN(prepared.expanded,
                        sweep::LoadSweep(prepared.text, path, options));
  LORA_ASSIGN_OR_RETURN(prepared.inputs,
                        sweep::FindLocalInputs(prepared.text, path));
  return prepared;
}

absl::StatusOr<std::string> UploadInputs(
    LoradClient* client, const PreparedSweep& prepared,
    const std::function<void(const UploadedInput&)>& on_upload) {
  // One upload per (folder, kind); a folder named twice is sent once.
  std::map<std::pair<std::string, int>, std::string> uploaded;
  std::vector<std::pair<sweep::LocalInput, std::string>> replacements;
  for (const sweep::LocalInput& input : prepared.inputs) {
    const auto key = std::make_pair(input.path, input.kind);
    auto found = uploaded.find(key);
    if (found == uploaded.end()) {
      absl::StatusOr<UploadedFolder> upload = UploadFolderIfMissing(
          client, input.path, static_cast<v1::ArtifactKind>(input.kind), "");
      if (!upload.ok()) {
        return absl::Status(
            upload.status().code(),
            absl::StrCat(prepared.source, ":", input.line + 1, ": ", input.key,
                         ": cannot upload \"", input.value,
                         "\": ", upload.status().message()));
      }
      found = uploaded.emplace(key, upload->artifact_id).first;
      if (on_upload) on_upload(UploadedInput{input, *upload});
    }
    replacements.emplace_back(input, found->second);
  }
  if (replacements.empty()) return prepared.text;
  return sweep::ReplaceScalars(prepared.text, replacements);
}

v1::SubmitSweepResponse DryRunResponse(const sweep::ExpandedSweep& expanded) {
  v1::SubmitSweepResponse response;
  v1::Sweep& sweep = *response.mutable_sweep();
  sweep.set_sweep_id(expanded.sweep_id);
  sweep.set_name(expanded.spec.name);
  sweep.set_spec_yaml(expanded.spec.text);
  sweep.set_state(v1::SWEEP_STATE_PENDING);
  std::string metric = expanded.spec.metric_name;
  if (metric.empty() && !expanded.runs.empty()) {
    metric = expanded.runs.front().config.metric_name;
  }
  sweep.mutable_metric()->set_name(metric);
  sweep.mutable_metric()->set_goal(expanded.spec.metric_maximize
                                       ? v1::METRIC_GOAL_MAXIMIZE
                                       : v1::METRIC_GOAL_MINIMIZE);
  sweep.set_priority(static_cast<int32_t>(expanded.spec.priority));
  sweep.set_total_runs(static_cast<int32_t>(expanded.runs.size()));
  (*sweep.mutable_run_counts())["PENDING"] =
      static_cast<int32_t>(expanded.runs.size());
  for (const sweep::ExpandedRun& run : expanded.runs) {
    v1::Run& out = *response.add_runs();
    out.set_run_id(run.run_id);
    out.set_sweep_id(expanded.sweep_id);
    out.set_index(static_cast<int32_t>(run.index));
    *out.mutable_config() = ToProto(run.config);
    out.set_config_hash(run.config_hash);
    if (run.parameters.is_object()) {
      for (const auto& [key, value] : run.parameters.items()) {
        (*out.mutable_parameters())[key] = JsonToValue(value);
      }
    }
    out.set_state(v1::RUN_STATE_PENDING);
    out.set_attempt(1);
    out.set_max_attempts(static_cast<int32_t>(expanded.spec.max_attempts));
    v1::ParameterCounts& counts = *out.mutable_parameter_counts();
    counts.set_total(run.counts.total);
    counts.set_trainable(run.counts.trainable);
    counts.set_lora(run.counts.lora);
    counts.set_head(run.counts.head);
    counts.set_base(run.counts.base);
  }
  return response;
}

}  // namespace lora::loractl
