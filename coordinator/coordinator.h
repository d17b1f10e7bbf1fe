// The coordinator's behaviour, free of gRPC: every SweepService and
// WorkerService call as a method on records, with the policies around the
// run store (leases, stop decisions, long-poll wake-ups, lease expiry).
// coordinator/grpc_services translates protos to these calls; tests drive
// this class directly with a fake clock.
//
// Thread-safe. Methods that wait (WaitForWork, WaitForEvents) never hold a
// lock while waiting and return early on Shutdown().
#ifndef LORA_SWEEP_COORDINATOR_COORDINATOR_H_
#define LORA_SWEEP_COORDINATOR_COORDINATOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "base/clock.h"
#include "coordinator/run_store.h"
#include "coordinator/scheduler.h"
#include "coordinator/sweep_submission.h"
#include "lora/v1/common.pb.h"

namespace lora::coordinator {

struct CoordinatorOptions {
  LeaseTiming timing;
  // Largest sweep accepted (runs after expansion).
  int64_t max_runs = 10000;
  // A RUNNING run whose step has not advanced for this long is stalled.
  int64_t stall_after_ms = 10 * 60 * 1000;
};

// A worker as the coordinator tracks it.
struct WorkerState {
  WorkerRecord record;
  WorkerOffer offer;  // device, GPUs, labels; free_slots as last reported
  int64_t max_concurrent_jobs = 1;
};

// A run leased to a worker: what AcquireJob returns.
struct LeasedJob {
  RunRecord run;
  std::string lease_id;
  std::string metric_name;
  bool metric_maximize = true;
};

// A lease a worker says it holds (Heartbeat).
struct HeldLeaseReport {
  std::string run_id;
  int64_t attempt = 0;
  std::string lease_id;
  int64_t step = 0;
};

struct StopOrder {
  std::string run_id;
  int64_t attempt = 0;
  std::string reason;  // "cancelled" | "lease_lost"
};

struct HeartbeatResult {
  std::vector<StopOrder> stop;
  int64_t lease_expire_ms = 0;
};

// One ReportProgress batch.
struct ProgressReport {
  std::string run_id;
  int64_t attempt = 0;
  std::string lease_id;
  std::vector<MetricPoint> points;
  std::string checkpoint_artifact_id;  // "" = none
};

struct ProgressResult {
  bool committed = false;  // the batch's points are durable
  bool stop = false;
  std::string stop_reason;
  int64_t lease_expire_ms = 0;
};

enum class AttemptOutcome { kSucceeded, kFailed, kStopped };

struct FinishReport {
  std::string run_id;
  int64_t attempt = 0;
  std::string lease_id;
  AttemptOutcome outcome = AttemptOutcome::kSucceeded;
  std::string error;
  std::string adapter_artifact_id;
};

class Coordinator {
 public:
  // `read_artifact_file(id, path)` reads a file of a stored artifact (for a
  // base checkpoint's config.json during validation).
  Coordinator(RunStore* store, const Clock* clock, CoordinatorOptions options,
              std::function<absl::StatusOr<std::string>(const std::string&,
                                                        const std::string&)>
                  read_artifact_file);

  const CoordinatorOptions& options() const { return options_; }
  RunStore* store() const { return store_; }
  int64_t NowMs() const;

  // --- Users (SweepService). ---
  absl::StatusOr<SubmitResult> Submit(SubmitRequest request);
  absl::StatusOr<SweepRecord> CancelSweep(const std::string& sweep_id);
  absl::StatusOr<RunRecord> CancelRun(const std::string& run_id);

  // --- Workers (WorkerService). ---
  // Registers (or re-registers, by name) a worker; the returned state holds
  // its id. Leases held by an earlier registration of the same name are
  // given up (their runs go back to the queue).
  // The worker id is derived from the name, so a worker keeps its id (and
  // its leases stay valid) across coordinator restarts: registered workers
  // are reloaded from the store.
  absl::StatusOr<WorkerState> RegisterWorker(
      const std::string& name, const v1::WorkerCapabilities& capabilities);
  // NotFound for an unknown worker (it must register again).
  absl::StatusOr<HeartbeatResult> Heartbeat(
      const std::string& worker_id, const std::vector<HeldLeaseReport>& held,
      int64_t free_slots);
  // Leases the best matching run to the worker (scheduler.h), or nullopt if
  // none is available now. NotFound for an unknown worker.
  absl::StatusOr<std::optional<LeasedJob>> TryAcquireJob(
      const std::string& worker_id);
  // Stores one progress batch. A stale lease or a cancelled run is not an
  // error: the result says stop (and nothing is stored).
  absl::StatusOr<ProgressResult> ReportProgress(const ProgressReport& report);
  // Ends an attempt; returns the run's state afterwards. Idempotent for a
  // repeated report of the same attempt. kStopped on a cancelled run
  // changes nothing; on a live run it gives the run up (a draining worker):
  // back to the queue with attempt + 1, like a retryable failure.
  absl::StatusOr<RunRecord> FinishRun(const FinishReport& report);
  std::vector<WorkerState> Workers() const;
  // RUNNING runs whose step has not advanced for options().stall_after_ms,
  // counted per sweep id. Progress times live in memory: after a restart a
  // run counts from the first report it makes.
  std::map<std::string, int64_t> StalledBySweep();

  // --- Maintenance. ---
  // Expires every lease past its deadline; returns how many.
  int64_t ExpireLeases();

  // --- Waiting. ---
  // A counter that moves whenever queued work may have appeared (submit,
  // requeue, expiry, retryable failure) or any sweep's events changed.
  int64_t ChangeCount() const;
  // Blocks until ChangeCount() != seen, `deadline` passes, or Shutdown().
  void WaitForChange(int64_t seen, absl::Time deadline) const;
  void Shutdown();
  bool shutting_down() const;

  // The lease id of a run's current attempt (stable, derived).
  static std::string LeaseId(const std::string& run_id, int64_t attempt,
                             const std::string& worker_id);

 private:
  void NotifyChange();
  // OK when the report names the run's current lease.
  absl::Status CheckLease(const RunRecord& run, int64_t attempt,
                          const std::string& lease_id) const;

  RunStore* const store_;
  const Clock* const clock_;
  const CoordinatorOptions options_;
  sweep::SweepValidationOptions validation_;

  mutable absl::Mutex mutex_;
  std::map<std::string, WorkerState> workers_ ABSL_GUARDED_BY(mutex_);
  // run id -> (highest step seen, when it was first seen).
  std::map<std::string, std::pair<int64_t, int64_t>> progress_
      ABSL_GUARDED_BY(mutex_);
  void NoteProgress(const std::string& run_id, int64_t step, int64_t now_ms);
  int64_t changes_ ABSL_GUARDED_BY(mutex_) = 0;
  bool shutdown_ ABSL_GUARDED_BY(mutex_) = false;
  // Serialises choosing and leasing, so two workers never race for a run.
  absl::Mutex lease_mutex_;
};

}  // namespace lora::coordinator

#endif  // LORA_SWEEP_COORDINATOR_COORDINATOR_H_
