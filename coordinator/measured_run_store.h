// A RunStore that forwards every call to another one and reports each
// call's latency, by operation name, to an observer (lorad exports it as
// lora_store_transaction_seconds{op}: each call is one SQLite transaction).
#ifndef LORA_SWEEP_COORDINATOR_MEASURED_RUN_STORE_H_
#define LORA_SWEEP_COORDINATOR_MEASURED_RUN_STORE_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "coordinator/run_store.h"

namespace lora::coordinator {

class MeasuredRunStore final : public RunStore {
 public:
  using Observer = std::function<void(const char* op, double seconds)>;

  // `inner` is not owned and must outlive this store.
  MeasuredRunStore(RunStore* inner, Observer observer)
      : inner_(inner), observer_(std::move(observer)) {}

  absl::StatusOr<CreateSweepResult> CreateSweep(
      const SweepRecord& sweep, const std::vector<RunRecord>& runs) override {
    return Timed("create_sweep",
                 [&] { return inner_->CreateSweep(sweep, runs); });
  }
  absl::StatusOr<SweepRecord> GetSweep(const std::string& sweep_id) override {
    return Timed("get_sweep", [&] { return inner_->GetSweep(sweep_id); });
  }
  absl::StatusOr<std::vector<SweepRecord>> ListSweeps(
      const std::string& after_sweep_id, int64_t limit) override {
    return Timed("list_sweeps",
                 [&] { return inner_->ListSweeps(after_sweep_id, limit); });
  }
  absl::StatusOr<RunRecord> GetRun(const std::string& run_id) override {
    return Timed("get_run", [&] { return inner_->GetRun(run_id); });
  }
  absl::StatusOr<std::vector<RunRecord>> ListRuns(
      const RunFilter& filter) override {
    return Timed("list_runs", [&] { return inner_->ListRuns(filter); });
  }
  absl::StatusOr<RunRecord> TransitionRun(
      const std::string& run_id, const RunTransition& transition) override {
    return Timed("transition_run",
                 [&] { return inner_->TransitionRun(run_id, transition); });
  }
  absl::StatusOr<SweepRecord> CancelSweep(const std::string& sweep_id,
                                          int64_t now_ms) override {
    return Timed("cancel_sweep",
                 [&] { return inner_->CancelSweep(sweep_id, now_ms); });
  }
  absl::StatusOr<int64_t> RequeueFailedRuns(const std::string& sweep_id,
                                            int64_t now_ms) override {
    return Timed("requeue_failed_runs",
                 [&] { return inner_->RequeueFailedRuns(sweep_id, now_ms); });
  }
  absl::StatusOr<AppendMetricsResult> AppendMetrics(
      const std::string& run_id, int64_t attempt,
      const std::vector<MetricPoint>& points, int64_t now_ms) override {
    return Timed("append_metrics", [&] {
      return inner_->AppendMetrics(run_id, attempt, points, now_ms);
    });
  }
  absl::StatusOr<std::vector<MetricRecord>> ReadMetricSeries(
      const std::string& run_id, const std::string& name) override {
    return Timed("read_metric_series",
                 [&] { return inner_->ReadMetricSeries(run_id, name); });
  }
  absl::StatusOr<std::vector<EventRecord>> ReadEvents(
      const std::string& sweep_id, int64_t after_sequence, int64_t limit,
      bool include_metrics) override {
    return Timed("read_events", [&] {
      return inner_->ReadEvents(sweep_id, after_sequence, limit,
                                include_metrics);
    });
  }
  absl::Status UpsertWorker(const WorkerRecord& worker) override {
    return Timed("upsert_worker", [&] { return inner_->UpsertWorker(worker); });
  }
  absl::StatusOr<std::vector<WorkerRecord>> ListWorkers() override {
    return Timed("list_workers", [&] { return inner_->ListWorkers(); });
  }
  absl::StatusOr<bool> PutArtifact(const ArtifactRecord& artifact) override {
    return Timed("put_artifact", [&] { return inner_->PutArtifact(artifact); });
  }
  absl::StatusOr<ArtifactRecord> GetArtifact(
      const std::string& artifact_id) override {
    return Timed("get_artifact",
                 [&] { return inner_->GetArtifact(artifact_id); });
  }
  absl::StatusOr<std::vector<ArtifactRecord>> ListArtifacts(
      int64_t kind, const std::string& run_id,
      const std::string& after_artifact_id, int64_t limit) override {
    return Timed("list_artifacts", [&] {
      return inner_->ListArtifacts(kind, run_id, after_artifact_id, limit);
    });
  }

 private:
  template <typename Call>
  auto Timed(const char* op, Call call) -> decltype(call()) {
    const absl::Time start = absl::Now();
    auto result = call();
    if (observer_) observer_(op, absl::ToDoubleSeconds(absl::Now() - start));
    return result;
  }

  RunStore* const inner_;
  const Observer observer_;
};

}  // namespace lora::coordinator

#endif  // LORA_SWEEP_COORDINATOR_MEASURED_RUN_STORE_H_
