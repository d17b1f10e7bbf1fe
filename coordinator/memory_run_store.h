// A RunStore kept in process memory: for tests and `lorad --store=memory`.
// Nothing survives the process. Thread-safe: one mutex serialises every
// method, so each is atomic.
#ifndef LORA_SWEEP_COORDINATOR_MEMORY_RUN_STORE_H_
#define LORA_SWEEP_COORDINATOR_MEMORY_RUN_STORE_H_

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/run_state.h"
#include "coordinator/run_store.h"

namespace lora::coordinator {

class MemoryRunStore final : public RunStore {
 public:
  MemoryRunStore() = default;
  MemoryRunStore(const MemoryRunStore&) = delete;
  MemoryRunStore& operator=(const MemoryRunStore&) = delete;

  absl::StatusOr<CreateSweepResult> CreateSweep(
      const SweepRecord& sweep, const std::vector<RunRecord>& runs) override;
  absl::StatusOr<SweepRecord> GetSweep(const std::string& sweep_id) override;
  absl::StatusOr<std::vector<SweepRecord>> ListSweeps(
      const std::string& after_sweep_id, int64_t limit) override;
  absl::StatusOr<RunRecord> GetRun(const std::string& run_id) override;
  absl::StatusOr<std::vector<RunRecord>> ListRuns(
      const RunFilter& filter) override;
  absl::StatusOr<RunRecord> TransitionRun(
      const std::string& run_id, const RunTransition& transition) override;
  absl::StatusOr<SweepRecord> CancelSweep(const std::string& sweep_id,
                                          int64_t now_ms) override;
  absl::StatusOr<int64_t> RequeueFailedRuns(const std::string& sweep_id,
                                            int64_t now_ms) override;
  absl::StatusOr<AppendMetricsResult> AppendMetrics(
      const std::string& run_id, int64_t attempt,
      const std::vector<MetricPoint>& points, int64_t now_ms) override;
  absl::StatusOr<std::vector<MetricRecord>> ReadMetricSeries(
      const std::string& run_id, const std::string& name) override;
  absl::StatusOr<std::vector<EventRecord>> ReadEvents(
      const std::string& sweep_id, int64_t after_sequence, int64_t limit,
      bool include_metrics) override;
  absl::Status UpsertWorker(const WorkerRecord& worker) override;
  absl::StatusOr<std::vector<WorkerRecord>> ListWorkers() override;
  absl::StatusOr<bool> PutArtifact(const ArtifactRecord& artifact) override;
  absl::StatusOr<ArtifactRecord> GetArtifact(
      const std::string& artifact_id) override;
  absl::StatusOr<std::vector<ArtifactRecord>> ListArtifacts(
      int64_t kind, const std::string& run_id,
      const std::string& after_artifact_id, int64_t limit) override;

 private:
  struct SweepEntry {
    SweepRecord record;
    std::vector<std::string> run_ids;  // in index order
    std::vector<EventRecord> events;   // events[i].sequence == i + 1
  };
  // (run id, name, step, attempt): the order ReadMetricSeries reads in.
  using MetricKey = std::tuple<std::string, std::string, int64_t, int64_t>;

  void AppendEvent(SweepEntry& sweep, EventRecord event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets the run's lifecycle and, if its state changed, the sweep's counts
  // and a RunStateChanged event.
  void ChangeRun(SweepEntry& sweep, RunRecord& run, const RunLifecycle& next,
                 const RunTransition& transition)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Rederive(SweepEntry& sweep, int64_t now_ms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<MetricRecord> SeriesLocked(const std::string& run_id,
                                         const std::string& name) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, SweepEntry> sweeps_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, RunRecord> runs_ ABSL_GUARDED_BY(mu_);
  std::map<MetricKey, MetricRecord> metrics_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, WorkerRecord> workers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, ArtifactRecord> artifacts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lora::coordinator

#endif  // LORA_SWEEP_COORDINATOR_MEMORY_RUN_STORE_H_
