#include "loractl/submission.h"

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "sweep/artifact_manifest.h"
#include "sweep/run_proto.h"

namespace lora::loractl {
namespace {

v1::RunConfig ToProto(const core::TrainConfig& config) {
  v1::RunConfig out = sweep::TrainConfigToRunConfig(config);
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
        (*out.mutable_parameters())[key] = sweep::JsonToValue(value);
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
