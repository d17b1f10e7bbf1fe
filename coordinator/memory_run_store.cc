#include "coordinator/memory_run_store.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/status_macros.h"
#include "coordinator/run_store_logic.h"

namespace lora::coordinator {
namespace {

absl::Status SweepNotFound(const std::string& sweep_id) {
  return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, " not found"));
}

absl::Status RunNotFound(const std::string& run_id) {
  return absl::NotFoundError(absl::StrCat("run ", run_id, " not found"));
}

absl::Status ArtifactNotFound(const std::string& artifact_id) {
  return absl::NotFoundError(
      absl::StrCat("artifact ", artifact_id, " not found"));
}

bool StateSelected(const std::vector<RunState>& states, RunState state) {
  return states.empty() ||
         std::find(states.begin(), states.end(), state) != states.end();
}

}  // namespace

void MemoryRunStore::AppendEvent(SweepEntry& sweep, EventRecord event) {
  event.sequence = ++sweep.record.last_sequence;
  sweep.events.push_back(std::move(event));
}

void MemoryRunStore::ChangeRun(SweepEntry& sweep, RunRecord& run,
                               const RunLifecycle& next,
                               const RunTransition& transition) {
  const RunLifecycle before = run.lifecycle;
  store_logic::SetLifecycle(run, next);
  if (before.state == next.state) return;
  store_logic::CountTransition(sweep.record, before.state, next.state);
  AppendEvent(sweep,
              store_logic::RunStateEvent(sweep.record.sweep_id, run.run_id,
                                         before, next, transition));
}

void MemoryRunStore::Rederive(SweepEntry& sweep, int64_t now_ms) {
  if (std::optional<EventRecord> event =
          store_logic::RederiveSweepState(sweep.record, now_ms)) {
    AppendEvent(sweep, *std::move(event));
  }
}

absl::StatusOr<CreateSweepResult> MemoryRunStore::CreateSweep(
    const SweepRecord& sweep, const std::vector<RunRecord>& runs) {
  SweepRecord new_sweep = sweep;
  std::vector<RunRecord> new_runs = runs;
  LORA_RETURN_IF_ERROR(store_logic::PrepareNewSweep(new_sweep, new_runs));
  absl::MutexLock lock(&mu_);
  if (auto it = sweeps_.find(sweep.sweep_id); it != sweeps_.end()) {
    return CreateSweepResult{it->second.record, /*already_existed=*/true};
  }
  for (const RunRecord& run : new_runs) {
    if (auto it = runs_.find(run.run_id); it != runs_.end()) {
      return absl::AlreadyExistsError(
          absl::StrCat("CreateSweep: run ", run.run_id,
                       " already belongs to sweep ", it->second.sweep_id));
    }
  }
  std::sort(
      new_runs.begin(), new_runs.end(),
      [](const RunRecord& a, const RunRecord& b) { return a.index < b.index; });
  SweepEntry entry;
  entry.record = new_sweep;
  for (RunRecord& run : new_runs) {
    entry.run_ids.push_back(run.run_id);
    std::string run_id = run.run_id;
    runs_.emplace(std::move(run_id), std::move(run));
  }
  sweeps_.emplace(new_sweep.sweep_id, std::move(entry));
  return CreateSweepResult{new_sweep, /*already_existed=*/false};
}

absl::StatusOr<SweepRecord> MemoryRunStore::GetSweep(
    const std::string& sweep_id) {
  absl::MutexLock lock(&mu_);
  auto it = sweeps_.find(sweep_id);
  if (it == sweeps_.end()) return SweepNotFound(sweep_id);
  return it->second.record;
}

absl::StatusOr<std::vector<SweepRecord>> MemoryRunStore::ListSweeps(
    const std::string& after_sweep_id, int64_t limit) {
  LORA_RETURN_IF_ERROR(store_logic::CheckLimit(limit, "ListSweeps"));
  absl::MutexLock lock(&mu_);
  using Key = std::pair<int64_t, std::string>;
  std::vector<std::pair<Key, const SweepRecord*>> order;
  for (const auto& [id, entry] : sweeps_) {
    order.push_back({{entry.record.create_ms, id}, &entry.record});
  }
  std::sort(order.begin(), order.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  size_t begin = 0;
  if (!after_sweep_id.empty()) {
    auto it = sweeps_.find(after_sweep_id);
    if (it == sweeps_.end()) return SweepNotFound(after_sweep_id);
    const Key after{it->second.record.create_ms, after_sweep_id};
    while (begin < order.size() && order[begin].first >= after) ++begin;
  }
  std::vector<SweepRecord> out;
  for (size_t i = begin;
       i < order.size() && static_cast<int64_t>(out.size()) < limit; ++i) {
    out.push_back(*order[i].second);
  }
  return out;
}

absl::StatusOr<RunRecord> MemoryRunStore::GetRun(const std::string& run_id) {
  absl::MutexLock lock(&mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return RunNotFound(run_id);
  return it->second;
}

absl::StatusOr<std::vector<RunRecord>> MemoryRunStore::ListRuns(
    const RunFilter& filter) {
  LORA_RETURN_IF_ERROR(store_logic::CheckLimit(filter.limit, "ListRuns"));
  absl::MutexLock lock(&mu_);
  // (sweep create time, sweep id, index), as SqliteRunStore pages.
  using Key = std::tuple<int64_t, std::string, int64_t>;
  auto key_of = [&](const RunRecord& run) {
    return Key{sweeps_.at(run.sweep_id).record.create_ms, run.sweep_id,
               run.index};
  };
  std::optional<Key> after;
  if (!filter.after_run_id.empty()) {
    auto it = runs_.find(filter.after_run_id);
    if (it == runs_.end()) return RunNotFound(filter.after_run_id);
    after = key_of(it->second);
  }
  if (!filter.sweep_id.empty() && !sweeps_.count(filter.sweep_id)) {
    return SweepNotFound(filter.sweep_id);
  }
  std::vector<std::pair<Key, const RunRecord*>> selected;
  for (const auto& [id, run] : runs_) {
    if (!filter.sweep_id.empty() && run.sweep_id != filter.sweep_id) continue;
    if (!StateSelected(filter.states, run.lifecycle.state)) continue;
    Key key = key_of(run);
    if (after.has_value() && !(key > *after)) continue;
    selected.push_back({std::move(key), &run});
  }
  std::sort(selected.begin(), selected.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<RunRecord> out;
  for (const auto& [key, run] : selected) {
    if (static_cast<int64_t>(out.size()) >= filter.limit) break;
    out.push_back(*run);
  }
  return out;
}

absl::StatusOr<RunRecord> MemoryRunStore::TransitionRun(
    const std::string& run_id, const RunTransition& transition) {
  absl::MutexLock lock(&mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return RunNotFound(run_id);
  RunRecord& run = it->second;
  LORA_ASSIGN_OR_RETURN(RunLifecycle next,
                        ApplyTransition(run_id, run.lifecycle, transition));
  SweepEntry& sweep = sweeps_.at(run.sweep_id);
  ChangeRun(sweep, run, next, transition);
  Rederive(sweep, transition.now_ms);
  return run;
}

absl::StatusOr<SweepRecord> MemoryRunStore::CancelSweep(
    const std::string& sweep_id, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  auto it = sweeps_.find(sweep_id);
  if (it == sweeps_.end()) return SweepNotFound(sweep_id);
  SweepEntry& sweep = it->second;
  const SweepState state = sweep.record.state;
  if (state == SweepState::kSucceeded || state == SweepState::kFailed ||
      state == SweepState::kCancelled) {
    return sweep.record;
  }
  RunTransition cancel;
  cancel.kind = RunTransition::Kind::kCancel;
  cancel.now_ms = now_ms;
  for (const std::string& run_id : sweep.run_ids) {
    RunRecord& run = runs_.at(run_id);
    if (IsTerminal(run.lifecycle.state)) continue;
    LORA_ASSIGN_OR_RETURN(RunLifecycle next,
                          ApplyTransition(run_id, run.lifecycle, cancel));
    ChangeRun(sweep, run, next, cancel);
  }
  sweep.record.cancelled = true;
  Rederive(sweep, now_ms);
  return sweep.record;
}

absl::StatusOr<int64_t> MemoryRunStore::RequeueFailedRuns(
    const std::string& sweep_id, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  auto it = sweeps_.find(sweep_id);
  if (it == sweeps_.end()) return SweepNotFound(sweep_id);
  SweepEntry& sweep = it->second;
  RunTransition requeue;
  requeue.kind = RunTransition::Kind::kRequeue;
  requeue.now_ms = now_ms;
  requeue.max_attempts = sweep.record.max_attempts;
  int64_t requeued = 0;
  for (const std::string& run_id : sweep.run_ids) {
    RunRecord& run = runs_.at(run_id);
    if (run.lifecycle.state != RunState::kFailed &&
        run.lifecycle.state != RunState::kCancelled) {
      continue;
    }
    LORA_ASSIGN_OR_RETURN(RunLifecycle next,
                          ApplyTransition(run_id, run.lifecycle, requeue));
    ChangeRun(sweep, run, next, requeue);
    ++requeued;
  }
  sweep.record.cancelled = false;
  Rederive(sweep, now_ms);
  return requeued;
}

absl::StatusOr<AppendMetricsResult> MemoryRunStore::AppendMetrics(
    const std::string& run_id, int64_t attempt,
    const std::vector<MetricPoint>& points, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return RunNotFound(run_id);
  RunRecord& run = it->second;
  LORA_RETURN_IF_ERROR(store_logic::CheckMetricsAllowed(run, attempt));
  SweepEntry& sweep = sweeps_.at(run.sweep_id);
  if (run.lifecycle.state == RunState::kLeased) {
    RunTransition start;
    start.kind = RunTransition::Kind::kStart;
    start.now_ms = now_ms;
    start.worker_id = run.lifecycle.worker_id;
    start.attempt = attempt;
    LORA_ASSIGN_OR_RETURN(RunLifecycle next,
                          ApplyTransition(run_id, run.lifecycle, start));
    ChangeRun(sweep, run, next, start);
  }
  const std::string& metric_name = sweep.record.metric_name;
  const bool maximize = sweep.record.metric_maximize;
  AppendMetricsResult result;
  bool recompute_best = false;
  for (const MetricPoint& point : points) {
    run.step = std::max(run.step, point.step);
    MetricKey key{run_id, point.name, point.step, attempt};
    if (metrics_.count(key)) {
      ++result.duplicates;
      continue;
    }
    ++result.stored;
    if (point.name == metric_name && !recompute_best) {
      // A replayed step replaces an older attempt's point in the series, so
      // the best may have been that point: recompute from the series.
      auto older = metrics_.lower_bound({run_id, point.name, point.step, 0});
      if (older != metrics_.end() && std::get<0>(older->first) == run_id &&
          std::get<1>(older->first) == point.name &&
          std::get<2>(older->first) == point.step) {
        recompute_best = true;
      } else if (store_logic::IsBetterMetric(point.value, run.best_metric,
                                             maximize)) {
        run.best_metric = point.value;
        run.best_epoch = point.epoch;
      }
    }
    EventRecord event;
    event.sweep_id = run.sweep_id;
    event.time_ms = point.time_ms;
    event.kind = EventRecord::Kind::kMetric;
    event.run_id = run_id;
    event.attempt = attempt;
    event.metric = point;
    AppendEvent(sweep, std::move(event));
    metrics_.emplace(std::move(key), MetricRecord{run_id, attempt, point,
                                                  sweep.record.last_sequence});
  }
  if (recompute_best) {
    store_logic::SetBestFromSeries(run, SeriesLocked(run_id, metric_name),
                                   maximize);
  }
  Rederive(sweep, now_ms);
  result.run = run;
  return result;
}

std::vector<MetricRecord> MemoryRunStore::SeriesLocked(
    const std::string& run_id, const std::string& name) const {
  std::vector<MetricRecord> out;
  for (auto it = metrics_.lower_bound({run_id, name, 0, 0});
       it != metrics_.end(); ++it) {
    const auto& [key_run, key_name, step, attempt] = it->first;
    if (key_run != run_id || (!name.empty() && key_name != name)) break;
    // Keys of one (name, step) are in attempt order: the last one wins.
    if (!out.empty() && out.back().point.name == key_name &&
        out.back().point.step == step) {
      out.back() = it->second;
    } else {
      out.push_back(it->second);
    }
  }
  return out;
}

absl::StatusOr<std::vector<MetricRecord>> MemoryRunStore::ReadMetricSeries(
    const std::string& run_id, const std::string& name) {
  absl::MutexLock lock(&mu_);
  if (!runs_.count(run_id)) return RunNotFound(run_id);
  return SeriesLocked(run_id, name);
}

absl::StatusOr<std::vector<EventRecord>> MemoryRunStore::ReadEvents(
    const std::string& sweep_id, int64_t after_sequence, int64_t limit,
    bool include_metrics) {
  LORA_RETURN_IF_ERROR(store_logic::CheckLimit(limit, "ReadEvents"));
  absl::MutexLock lock(&mu_);
  auto it = sweeps_.find(sweep_id);
  if (it == sweeps_.end()) return SweepNotFound(sweep_id);
  const std::vector<EventRecord>& events = it->second.events;
  std::vector<EventRecord> out;
  for (size_t i = static_cast<size_t>(std::max<int64_t>(after_sequence, 0));
       i < events.size() && static_cast<int64_t>(out.size()) < limit; ++i) {
    if (!include_metrics && events[i].kind == EventRecord::Kind::kMetric) {
      continue;
    }
    out.push_back(events[i]);
  }
  return out;
}

absl::Status MemoryRunStore::UpsertWorker(const WorkerRecord& worker) {
  LORA_RETURN_IF_ERROR(store_logic::ValidateWorker(worker));
  absl::MutexLock lock(&mu_);
  workers_[worker.worker_id] = worker;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<WorkerRecord>> MemoryRunStore::ListWorkers() {
  absl::MutexLock lock(&mu_);
  std::vector<WorkerRecord> out;
  for (const auto& [id, worker] : workers_) out.push_back(worker);
  return out;
}

absl::StatusOr<bool> MemoryRunStore::PutArtifact(
    const ArtifactRecord& artifact) {
  ArtifactRecord record = artifact;
  LORA_RETURN_IF_ERROR(store_logic::ValidateArtifact(record));
  absl::MutexLock lock(&mu_);
  return artifacts_.emplace(record.artifact_id, record).second;
}

absl::StatusOr<ArtifactRecord> MemoryRunStore::GetArtifact(
    const std::string& artifact_id) {
  absl::MutexLock lock(&mu_);
  auto it = artifacts_.find(artifact_id);
  if (it == artifacts_.end()) return ArtifactNotFound(artifact_id);
  return it->second;
}

absl::StatusOr<std::vector<ArtifactRecord>> MemoryRunStore::ListArtifacts(
    int64_t kind, const std::string& run_id,
    const std::string& after_artifact_id, int64_t limit) {
  LORA_RETURN_IF_ERROR(store_logic::CheckLimit(limit, "ListArtifacts"));
  absl::MutexLock lock(&mu_);
  using Key = std::pair<int64_t, std::string>;  // newest first
  std::optional<Key> after;
  if (!after_artifact_id.empty()) {
    auto it = artifacts_.find(after_artifact_id);
    if (it == artifacts_.end()) return ArtifactNotFound(after_artifact_id);
    after = Key{it->second.create_ms, after_artifact_id};
  }
  std::vector<std::pair<Key, const ArtifactRecord*>> selected;
  for (const auto& [id, artifact] : artifacts_) {
    if (kind != 0 && artifact.kind != kind) continue;
    if (!run_id.empty() && artifact.run_id != run_id) continue;
    Key key{artifact.create_ms, id};
    if (after.has_value() && !(key < *after)) continue;
    selected.push_back({std::move(key), &artifact});
  }
  std::sort(selected.begin(), selected.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<ArtifactRecord> out;
  for (const auto& [key, artifact] : selected) {
    if (static_cast<int64_t>(out.size()) >= limit) break;
    out.push_back(*artifact);
    out.back().files.clear();
  }
  return out;
}

}  // namespace lora::coordinator
