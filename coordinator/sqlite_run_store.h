// The durable RunStore: one SQLite database file in WAL mode.
//
// Every method is one transaction (BEGIN IMMEDIATE for methods that write,
// a deferred read transaction for those that only read, so readers see one
// snapshot), committed with synchronous=FULL: a method that returned OK is on
// disk, and a process killed at any moment leaves every call either fully
// applied or not at all. Several processes (or several SqliteRunStore
// objects) may open the same file; writers wait for each other up to
// `busy_timeout_ms`, then fail with Unavailable.
//
// The schema carries its version in a `schema_version` table. Open applies
// the forward migrations the file lacks, each in its own transaction, and
// refuses (FailedPrecondition naming the file and both versions) a file
// written by a newer schema, before changing anything in it. A file that is
// not a SQLite database, or is a SQLite database of something else, is
// refused the same way and left as it is; nothing is ever deleted or
// recreated.
//
// Thread-safe: one connection per object, serialised by a mutex; use several
// objects for parallel readers.
#ifndef LORA_SWEEP_COORDINATOR_SQLITE_RUN_STORE_H_
#define LORA_SWEEP_COORDINATOR_SQLITE_RUN_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/run_state.h"
#include "coordinator/run_store.h"

namespace lora::coordinator {

namespace sqlite_internal {
class Db;  // the connection and its prepared statements
}  // namespace sqlite_internal

struct SqliteOptions {
  // How long a call waits for another connection's write transaction before
  // it fails with Unavailable.
  int64_t busy_timeout_ms = 5000;
};

class SqliteRunStore final : public RunStore {
 public:
  // The schema version this build writes; Open migrates older files to it.
  static constexpr int64_t kSchemaVersion = 1;

  // Opens (creating if missing) the run store at `path`. Errors name the
  // file: FailedPrecondition for a file that is not a run store or has a
  // newer schema, DataLoss for a corrupt one, Unavailable when it is locked
  // for longer than the busy timeout or cannot be opened.
  static absl::StatusOr<std::unique_ptr<SqliteRunStore>> Open(
      const std::string& path, const SqliteOptions& options = {});

  ~SqliteRunStore() override;
  SqliteRunStore(const SqliteRunStore&) = delete;
  SqliteRunStore& operator=(const SqliteRunStore&) = delete;

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
  explicit SqliteRunStore(std::unique_ptr<sqlite_internal::Db> db);

  enum class Mode { kRead, kWrite };
  // Runs `body` in one transaction: committed if it returns OK, else rolled
  // back.
  absl::Status Transact(
      Mode mode, absl::FunctionRef<absl::Status(sqlite_internal::Db&)> body);

  absl::Mutex mu_;
  std::unique_ptr<sqlite_internal::Db> db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lora::coordinator

#endif  // LORA_SWEEP_COORDINATOR_SQLITE_RUN_STORE_H_
