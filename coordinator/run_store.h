// The run store: the coordinator's single source of truth for sweeps, runs,
// attempts, metric points, workers, artifacts and the event log that feeds
// WatchSweep. Two implementations pass one conformance suite
// (tests/coordinator/run_store_conformance_test.cc): SqliteRunStore, the
// durable one, and MemoryRunStore, for tests and `lorad --store=memory`.
//
// Contract shared by both:
//  - Every method is one atomic step: it happens entirely or not at all, and
//    for SQLite it is one transaction, durable when the method returns OK.
//  - Methods are safe to call from many threads at once.
//  - Run transitions go through ApplyTransition (run_state.h); each one that
//    changes a run's state appends a RunStateChanged event, and one that
//    changes the sweep's derived state also appends a SweepStateChanged event.
//  - Every sweep has its own event sequence: 1, 2, 3, ... with no gaps.
//    Metric points that are stored take sequence numbers too.
//  - Times are unix milliseconds supplied by the caller (tests use a fake
//    clock).
//  - Errors: NotFound for an unknown sweep, run or artifact id (paging
//    tokens included), InvalidArgument for malformed input (empty ids,
//    limit < 1), FailedPrecondition for a transition or metric batch the
//    run's state does not allow. Unavailable when the store is busy or its
//    storage fails transiently (the call changed nothing and may be retried).
#ifndef LORA_SWEEP_COORDINATOR_RUN_STORE_H_
#define LORA_SWEEP_COORDINATOR_RUN_STORE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coordinator/run_state.h"

namespace lora::coordinator {

struct SweepRecord {
  std::string sweep_id;
  std::string name;
  std::string spec_yaml;    // as submitted
  std::string source_name;  // the file name it was submitted as
  std::string metric_name;
  bool metric_maximize = true;
  int64_t priority = 0;
  int64_t max_attempts = 3;
  bool cancelled = false;
  SweepState state = SweepState::kPending;  // derived; maintained by store
  RunCounts counts;                         // derived; maintained by store
  int64_t create_ms = 0;
  int64_t end_ms = 0;  // when the sweep became terminal; 0 before
  // The sequence number of the sweep's latest event (0 before the first):
  // a watcher that reads the sweep and its runs resumes ReadEvents here.
  int64_t last_sequence = 0;  // maintained by store
};

struct ParameterCountsRecord {
  int64_t total = 0, trainable = 0, lora = 0, head = 0, base = 0;
};

struct RunRecord {
  std::string run_id;
  std::string sweep_id;
  int64_t index = 0;
  std::string config_yaml;  // resolved lora_core TrainConfig
  std::string config_hash;
  std::string parameters_json;  // {"lora.rank": 4, "seed": 0}
  // Resources the run needs.
  std::string device = "cpu";
  int64_t gpus = 0;
  int64_t cpu_threads = 0;
  std::map<std::string, std::string> worker_labels;
  ParameterCountsRecord counts;
  RunLifecycle lifecycle;
  int64_t create_ms = 0;
  // Progress summary, maintained by the store.
  int64_t step = 0;  // highest step reported by the current attempt (0 when
                     // a new attempt begins)
  // The best value of the sweep's metric in the run's series (as
  // ReadMetricSeries returns it: a replayed step replaces the older
  // attempt's value) and its epoch; NaN is never best.
  std::optional<double> best_metric;
  int64_t best_epoch = 0;
};

struct MetricPoint {
  std::string name;
  int64_t step = 0;
  int64_t epoch = 0;
  double value = 0;  // any double, NaN and infinities included
  int64_t time_ms = 0;
};

struct MetricRecord {
  std::string run_id;
  int64_t attempt = 0;
  MetricPoint point;
  int64_t sequence = 0;  // in the sweep's event sequence
};

struct EventRecord {
  enum class Kind { kRunState, kMetric, kSweepState };
  std::string sweep_id;
  int64_t sequence = 0;
  int64_t time_ms = 0;  // of the change; kMetric: the point's time_ms
  Kind kind = Kind::kRunState;
  // kRunState and kMetric. kRunState: the run's attempt after the change.
  std::string run_id;
  int64_t attempt = 0;
  // kRunState: the new state; the worker that holds the new lease or, for a
  // run leaving its lease, the one that held it; the error of a failed or
  // expired attempt ("" for other changes).
  RunState run_state = RunState::kPending;
  std::string worker_id;
  std::string error;
  // kMetric.
  MetricPoint metric;
  // kSweepState.
  SweepState sweep_state = SweepState::kPending;
};

struct WorkerRecord {
  std::string worker_id;
  std::string name;
  // lora.v1.WorkerCapabilities in its binary proto form (opaque here).
  std::string capabilities;
  int64_t register_ms = 0;
  int64_t last_heartbeat_ms = 0;
};

struct ArtifactFileRecord {
  std::string path;
  int64_t size_bytes = 0;
  std::string sha256;
};

struct ArtifactRecord {
  std::string artifact_id;  // "sha256:<hex>"
  int64_t kind = 0;         // lora.v1.ArtifactKind value
  std::string name;
  std::vector<ArtifactFileRecord> files;  // sorted by path; unique paths
  int64_t size_bytes = 0;
  std::string run_id;  // "" for none; not checked against the runs
  int64_t create_ms = 0;
};

struct CreateSweepResult {
  SweepRecord sweep;
  bool already_existed = false;
};

struct RunFilter {
  std::string sweep_id;          // "" = every sweep
  std::vector<RunState> states;  // empty = every state
  // Paging in (sweep create time, sweep id, index) order: runs after this
  // run id; "" = from the start.
  std::string after_run_id;
  int64_t limit = 1000;
};

struct AppendMetricsResult {
  int64_t stored = 0;      // new points
  int64_t duplicates = 0;  // points already stored (a re-sent batch)
  // The run after the batch (step, best metric; RUNNING if it was LEASED).
  RunRecord run;
};

class RunStore {
 public:
  virtual ~RunStore() = default;

  // Stores a sweep and its runs (PENDING, attempt 1, max_attempts from the
  // sweep), or, if a sweep with this id exists, changes nothing and returns
  // it with `already_existed`. The store sets the derived fields of both
  // (state, counts, cancelled, end_ms, last_sequence; each run's sweep_id,
  // lifecycle and progress; a run's create_ms of 0 becomes the sweep's).
  // InvalidArgument for an empty sweep or run id, no runs, max_attempts < 1,
  // or a run id or index given twice; AlreadyExists for a run id that
  // another sweep holds.
  virtual absl::StatusOr<CreateSweepResult> CreateSweep(
      const SweepRecord& sweep, const std::vector<RunRecord>& runs) = 0;

  // NotFound for an unknown id.
  virtual absl::StatusOr<SweepRecord> GetSweep(const std::string& sweep_id) = 0;

  // Newest first (create_ms, then sweep id, descending); at most `limit`,
  // starting after `after_sweep_id` ("" = from the newest).
  virtual absl::StatusOr<std::vector<SweepRecord>> ListSweeps(
      const std::string& after_sweep_id, int64_t limit) = 0;

  virtual absl::StatusOr<RunRecord> GetRun(const std::string& run_id) = 0;

  virtual absl::StatusOr<std::vector<RunRecord>> ListRuns(
      const RunFilter& filter) = 0;

  // Applies one transition (run_state.h) to a run. Errors: NotFound,
  // FailedPrecondition from ApplyTransition.
  virtual absl::StatusOr<RunRecord> TransitionRun(
      const std::string& run_id, const RunTransition& transition) = 0;

  // Cancels every non-terminal run of a sweep and marks it cancelled, in
  // one transaction. Cancelling a terminal sweep changes nothing.
  virtual absl::StatusOr<SweepRecord> CancelSweep(const std::string& sweep_id,
                                                  int64_t now_ms) = 0;

  // Returns the sweep's FAILED and CANCELLED runs to PENDING (kRequeue with
  // the sweep's max_attempts) and clears its cancelled mark. Returns how
  // many runs were requeued.
  virtual absl::StatusOr<int64_t> RequeueFailedRuns(const std::string& sweep_id,
                                                    int64_t now_ms) = 0;

  // Stores a batch of a run attempt's metric points in one transaction.
  // Idempotent: a point is unique on (run, attempt, step, name); re-sent
  // points are counted as duplicates and not stored again. The attempt must
  // be the run's current one and the run LEASED or RUNNING (else
  // FailedPrecondition); a LEASED run becomes RUNNING. Updates the run's
  // step and, for points named `metric_name` of the sweep, its best metric.
  virtual absl::StatusOr<AppendMetricsResult> AppendMetrics(
      const std::string& run_id, int64_t attempt,
      const std::vector<MetricPoint>& points, int64_t now_ms) = 0;

  // A run's series of one metric ("" = every name), in (name, step) order:
  // for each (name, step), the point of the highest attempt that reported
  // it, so a resumed attempt's replayed steps replace the older ones.
  virtual absl::StatusOr<std::vector<MetricRecord>> ReadMetricSeries(
      const std::string& run_id, const std::string& name) = 0;

  // Events of a sweep with sequence > after_sequence, in sequence order, at
  // most `limit`. Without `include_metrics`, metric events are skipped (the
  // sequence numbers keep their gaps). A sweep's creation is not an event.
  virtual absl::StatusOr<std::vector<EventRecord>> ReadEvents(
      const std::string& sweep_id, int64_t after_sequence, int64_t limit,
      bool include_metrics) = 0;

  // Inserts or updates a worker (by id; every field is replaced).
  virtual absl::Status UpsertWorker(const WorkerRecord& worker) = 0;
  // In worker id order.
  virtual absl::StatusOr<std::vector<WorkerRecord>> ListWorkers() = 0;

  // Stores an artifact's record; storing an id that exists changes nothing
  // and returns false (true when new).
  virtual absl::StatusOr<bool> PutArtifact(const ArtifactRecord& artifact) = 0;
  virtual absl::StatusOr<ArtifactRecord> GetArtifact(
      const std::string& artifact_id) = 0;
  // Newest first (create_ms, then id, descending), without file lists;
  // kind 0 = every kind; run_id "" = any.
  virtual absl::StatusOr<std::vector<ArtifactRecord>> ListArtifacts(
      int64_t kind, const std::string& run_id,
      const std::string& after_artifact_id, int64_t limit) = 0;
};

}  // namespace lora::coordinator

#endif  // LORA_SWEEP_COORDINATOR_RUN_STORE_H_
