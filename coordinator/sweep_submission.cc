#include "coordinator/sweep_submission.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "lora_core/model_config.h"
#include "sweep/artifact_manifest.h"

namespace lora::coordinator {
namespace {

// lora.v1.ArtifactKind values.
constexpr int64_t kDatasetKind = 1;
constexpr int64_t kBaseCheckpointKind = 2;

absl::Status CheckArtifactKind(const ArtifactRecord& artifact, int64_t kind,
                               const char* expected) {
  if (artifact.kind == kind) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("artifact ", artifact.artifact_id, " (", artifact.name,
                   ") is not a ", expected, " artifact"));
}

}  // namespace

sweep::SweepValidationOptions CoordinatorValidationOptions(
    RunStore* store, int64_t max_runs,
    std::function<absl::StatusOr<std::string>(const std::string&,
                                              const std::string&)>
        read_artifact_file) {
  sweep::SweepValidationOptions options;
  options.max_runs = max_runs;
  options.resolve_model =
      [store, read_artifact_file](
          const std::string& model) -> absl::StatusOr<core::ModelConfig> {
    if (!sweep::IsArtifactId(model)) {
      return absl::NotFoundError(
          "not a built-in config, and a local folder cannot be read by the "
          "coordinator (loractl uploads folders as artifacts)");
    }
    LORA_ASSIGN_OR_RETURN(ArtifactRecord artifact, store->GetArtifact(model));
    LORA_RETURN_IF_ERROR(
        CheckArtifactKind(artifact, kBaseCheckpointKind, "base checkpoint"));
    LORA_ASSIGN_OR_RETURN(std::string json,
                          read_artifact_file(model, "config.json"));
    LORA_ASSIGN_OR_RETURN(
        core::ModelConfig config,
        core::ParseModelConfigJson(json, model + "/config.json"));
    config.name = artifact.name;
    return config;
  };
  options.check_data_dir =
      [store](const std::string& data_dir) -> absl::Status {
    if (!sweep::IsArtifactId(data_dir)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", data_dir,
          "\" is a path on the client; upload it as an artifact (loractl "
          "submit does) and give its id"));
    }
    absl::StatusOr<ArtifactRecord> artifact = store->GetArtifact(data_dir);
    if (!artifact.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("no artifact ", data_dir, " on this coordinator"));
    }
    return CheckArtifactKind(*artifact, kDatasetKind, "dataset");
  };
  return options;
}

SweepRecord ToSweepRecord(const sweep::ExpandedSweep& sweep,
                          const std::string& source_name, int64_t now_ms) {
  SweepRecord record;
  record.sweep_id = sweep.sweep_id;
  record.name = sweep.spec.name;
  record.spec_yaml = sweep.spec.text;
  record.source_name = source_name;
  record.metric_name = sweep.runs.empty()
                           ? sweep.spec.metric_name
                           : sweep.runs.front().config.metric_name;
  record.metric_maximize = sweep.runs.empty()
                               ? sweep.spec.metric_maximize
                               : sweep.runs.front().config.metric_maximize;
  record.priority = sweep.spec.priority;
  record.max_attempts = sweep.spec.max_attempts;
  record.create_ms = now_ms;
  return record;
}

std::vector<RunRecord> ToRunRecords(const sweep::ExpandedSweep& sweep,
                                    int64_t now_ms) {
  std::vector<RunRecord> runs;
  runs.reserve(sweep.runs.size());
  for (const sweep::ExpandedRun& run : sweep.runs) {
    RunRecord record;
    record.run_id = run.run_id;
    record.sweep_id = sweep.sweep_id;
    record.index = run.index;
    record.config_yaml = run.config_yaml;
    record.config_hash = run.config_hash;
    record.parameters_json = run.parameters.dump();
    record.device = sweep.spec.resources.device;
    record.gpus = sweep.spec.resources.gpus;
    record.cpu_threads = sweep.spec.resources.cpu_threads;
    record.worker_labels = sweep.spec.resources.worker_labels;
    record.counts = {run.counts.total, run.counts.trainable, run.counts.lora,
                     run.counts.head, run.counts.base};
    record.lifecycle.max_attempts = sweep.spec.max_attempts;
    record.create_ms = now_ms;
    runs.push_back(std::move(record));
  }
  return runs;
}

absl::StatusOr<SubmitResult> SubmitSweep(
    RunStore* store, const SubmitRequest& request,
    const sweep::SweepValidationOptions& options) {
  LORA_ASSIGN_OR_RETURN(
      sweep::ExpandedSweep expanded,
      sweep::LoadSweep(request.spec_yaml, request.source_name, options));
  SubmitResult result;
  result.duplicates_dropped = expanded.duplicates_dropped;
  SweepRecord sweep =
      ToSweepRecord(expanded, request.source_name, request.now_ms);
  std::vector<RunRecord> runs = ToRunRecords(expanded, request.now_ms);
  if (request.dry_run) {
    absl::StatusOr<SweepRecord> existing = store->GetSweep(sweep.sweep_id);
    result.already_existed = existing.ok();
    sweep.counts.pending = static_cast<int64_t>(runs.size());
    result.sweep = existing.ok() ? *existing : sweep;
    result.runs = std::move(runs);
    return result;
  }
  LORA_ASSIGN_OR_RETURN(CreateSweepResult created,
                        store->CreateSweep(sweep, runs));
  result.already_existed = created.already_existed;
  if (created.already_existed && request.retry_failed) {
    LORA_ASSIGN_OR_RETURN(
        result.requeued_runs,
        store->RequeueFailedRuns(sweep.sweep_id, request.now_ms));
  }
  LORA_ASSIGN_OR_RETURN(result.sweep, store->GetSweep(sweep.sweep_id));
  RunFilter filter;
  filter.sweep_id = sweep.sweep_id;
  filter.limit = static_cast<int64_t>(runs.size()) + 1;
  LORA_ASSIGN_OR_RETURN(result.runs, store->ListRuns(filter));
  return result;
}

}  // namespace lora::coordinator
