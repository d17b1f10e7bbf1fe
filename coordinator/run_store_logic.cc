#include "coordinator/run_store_logic.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace lora::coordinator::store_logic {

absl::Status PrepareNewSweep(SweepRecord& sweep, std::vector<RunRecord>& runs) {
  if (sweep.sweep_id.empty()) {
    return absl::InvalidArgumentError("CreateSweep: empty sweep id");
  }
  if (runs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("CreateSweep: sweep ", sweep.sweep_id, " has no runs"));
  }
  if (sweep.max_attempts < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("CreateSweep: sweep ", sweep.sweep_id,
                     ": max_attempts must be >= 1, got ", sweep.max_attempts));
  }
  std::set<std::string> ids;
  std::set<int64_t> indexes;
  sweep.cancelled = false;
  sweep.counts = RunCounts();
  sweep.end_ms = 0;
  sweep.last_sequence = 0;
  for (RunRecord& run : runs) {
    if (run.run_id.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("CreateSweep: sweep ", sweep.sweep_id, ": run ",
                       run.index, " has an empty run id"));
    }
    if (!ids.insert(run.run_id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("CreateSweep: sweep ", sweep.sweep_id, ": run id ",
                       run.run_id, " given twice"));
    }
    if (!indexes.insert(run.index).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("CreateSweep: sweep ", sweep.sweep_id, ": run index ",
                       run.index, " given twice"));
    }
    run.sweep_id = sweep.sweep_id;
    run.lifecycle = RunLifecycle();
    run.lifecycle.max_attempts = sweep.max_attempts;
    if (run.create_ms == 0) run.create_ms = sweep.create_ms;
    run.step = 0;
    run.best_metric.reset();
    run.best_epoch = 0;
    sweep.counts.Add(RunState::kPending);
  }
  sweep.state = DeriveSweepState(sweep.counts, sweep.cancelled);
  return absl::OkStatus();
}

absl::Status CheckLimit(int64_t limit, const char* what) {
  if (limit >= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": limit must be >= 1, got ", limit));
}

absl::Status ValidateWorker(const WorkerRecord& worker) {
  if (worker.worker_id.empty()) {
    return absl::InvalidArgumentError("UpsertWorker: empty worker id");
  }
  return absl::OkStatus();
}

absl::Status ValidateArtifact(ArtifactRecord& artifact) {
  if (artifact.artifact_id.empty()) {
    return absl::InvalidArgumentError("PutArtifact: empty artifact id");
  }
  std::sort(artifact.files.begin(), artifact.files.end(),
            [](const ArtifactFileRecord& a, const ArtifactFileRecord& b) {
              return a.path < b.path;
            });
  for (size_t i = 0; i < artifact.files.size(); ++i) {
    if (artifact.files[i].path.empty() ||
        (i > 0 && artifact.files[i].path == artifact.files[i - 1].path)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "PutArtifact: artifact ", artifact.artifact_id,
          artifact.files[i].path.empty()
              ? " has a file with an empty path"
              : " lists file " + artifact.files[i].path + " twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckMetricsAllowed(const RunRecord& run, int64_t attempt) {
  const RunState state = run.lifecycle.state;
  if (state != RunState::kLeased && state != RunState::kRunning) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", run.run_id, ": metrics of attempt ", attempt,
                     " rejected: the run is ", RunStateName(state)));
  }
  if (attempt != run.lifecycle.attempt) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run ", run.run_id, ": metrics of attempt ", attempt,
        " rejected: the run is at attempt ", run.lifecycle.attempt));
  }
  return absl::OkStatus();
}

void SetLifecycle(RunRecord& run, const RunLifecycle& next) {
  if (next.attempt != run.lifecycle.attempt) run.step = 0;
  run.lifecycle = next;
}

EventRecord RunStateEvent(const std::string& sweep_id,
                          const std::string& run_id, const RunLifecycle& before,
                          const RunLifecycle& after,
                          const RunTransition& transition) {
  EventRecord event;
  event.sweep_id = sweep_id;
  event.time_ms = transition.now_ms;
  event.kind = EventRecord::Kind::kRunState;
  event.run_id = run_id;
  event.attempt = after.attempt;
  event.run_state = after.state;
  event.worker_id =
      after.worker_id.empty() ? before.worker_id : after.worker_id;
  if (transition.kind == RunTransition::Kind::kFail ||
      transition.kind == RunTransition::Kind::kExpireLease) {
    event.error = after.error;
  }
  return event;
}

void CountTransition(SweepRecord& sweep, RunState before, RunState after) {
  sweep.counts.Add(before, -1);
  sweep.counts.Add(after, 1);
}

std::optional<EventRecord> RederiveSweepState(SweepRecord& sweep,
                                              int64_t now_ms) {
  const SweepState state = DeriveSweepState(sweep.counts, sweep.cancelled);
  if (state == sweep.state) return std::nullopt;
  sweep.state = state;
  const bool terminal = state == SweepState::kSucceeded ||
                        state == SweepState::kFailed ||
                        state == SweepState::kCancelled;
  sweep.end_ms = terminal ? now_ms : 0;
  EventRecord event;
  event.sweep_id = sweep.sweep_id;
  event.time_ms = now_ms;
  event.kind = EventRecord::Kind::kSweepState;
  event.sweep_state = state;
  return event;
}

bool IsBetterMetric(double value, const std::optional<double>& best,
                    bool maximize) {
  if (std::isnan(value)) return false;
  if (!best.has_value()) return true;
  return maximize ? value > *best : value < *best;
}

void SetBestFromSeries(RunRecord& run, const std::vector<MetricRecord>& series,
                       bool maximize) {
  run.best_metric.reset();
  run.best_epoch = 0;
  for (const MetricRecord& record : series) {
    if (IsBetterMetric(record.point.value, run.best_metric, maximize)) {
      run.best_metric = record.point.value;
      run.best_epoch = record.point.epoch;
    }
  }
}

std::string AttemptOutcome(const RunTransition& transition, RunState after) {
  switch (transition.kind) {
    case RunTransition::Kind::kExpireLease:
      return "LEASE_EXPIRED";
    case RunTransition::Kind::kFail:
      return "FAILED";
    default:
      return RunStateName(after);
  }
}

}  // namespace lora::coordinator::store_logic
