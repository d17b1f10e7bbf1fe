#include "coordinator/sqlite_run_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "base/status_macros.h"
#include "coordinator/run_store_logic.h"

namespace lora::coordinator {
namespace sqlite_internal {

class Db;

// A cached prepared statement, borrowed for one use: bind, step, read
// columns. The destructor resets it and clears its bindings for the next
// use. Binding errors are reported by the first Step().
class Stmt {
 public:
  Stmt(Db& db, sqlite3_stmt* stmt) : db_(&db), stmt_(stmt) {}
  Stmt(Stmt&& other) noexcept
      : db_(other.db_),
        stmt_(std::exchange(other.stmt_, nullptr)),
        bind_rc_(other.bind_rc_) {}
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt() {
    if (stmt_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }

  Stmt& Int(int index, int64_t value) {
    return Check(sqlite3_bind_int64(stmt_, index, value));
  }
  Stmt& Text(int index, absl::string_view value) {
    return Check(sqlite3_bind_text64(stmt_, index, value.data(), value.size(),
                                     SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  Stmt& Blob(int index, absl::string_view value) {
    return Check(sqlite3_bind_blob64(stmt_, index, value.data(), value.size(),
                                     SQLITE_TRANSIENT));
  }
  // SQLite stores NaN as NULL; ColReal reads NULL back as NaN.
  Stmt& Real(int index, double value) {
    return Check(sqlite3_bind_double(stmt_, index, value));
  }
  Stmt& OptReal(int index, const std::optional<double>& value) {
    return value.has_value() ? Real(index, *value)
                             : Check(sqlite3_bind_null(stmt_, index));
  }

  // True when a row is ready, false when the statement is done.
  absl::StatusOr<bool> Step();
  // Runs a statement that returns no rows.
  absl::Status Run();

  int64_t ColInt(int column) const {
    return sqlite3_column_int64(stmt_, column);
  }
  double ColReal(int column) const {
    if (sqlite3_column_type(stmt_, column) == SQLITE_NULL) {
      return std::numeric_limits<double>::quiet_NaN();
    }
    return sqlite3_column_double(stmt_, column);
  }
  std::optional<double> ColOptReal(int column) const {
    if (sqlite3_column_type(stmt_, column) == SQLITE_NULL) return std::nullopt;
    return sqlite3_column_double(stmt_, column);
  }
  std::string ColText(int column) const {
    const unsigned char* text = sqlite3_column_text(stmt_, column);
    const int size = sqlite3_column_bytes(stmt_, column);
    return text == nullptr
               ? std::string()
               : std::string(reinterpret_cast<const char*>(text), size);
  }
  std::string ColBlob(int column) const {
    const void* blob = sqlite3_column_blob(stmt_, column);
    const int size = sqlite3_column_bytes(stmt_, column);
    return blob == nullptr ? std::string()
                           : std::string(static_cast<const char*>(blob), size);
  }

 private:
  Stmt& Check(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
    return *this;
  }

  Db* db_;
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
};

// A connection with its cache of prepared statements. Not thread-safe.
class Db {
 public:
  Db(std::string path, sqlite3* handle)
      : path_(std::move(path)), handle_(handle) {}
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db() {
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
    sqlite3_close_v2(handle_);
  }

  sqlite3* handle() const { return handle_; }
  const std::string& path() const { return path_; }
  int64_t Changes() const { return sqlite3_changes(handle_); }

  // `sql` is one of the SQL constants below: statements are cached by its
  // address, prepared once per connection.
  absl::StatusOr<Stmt> Prepare(const char* sql) {
    sqlite3_stmt*& stmt = statements_[sql];
    if (stmt == nullptr) {
      const int rc = sqlite3_prepare_v3(
          handle_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
      if (rc != SQLITE_OK) {
        absl::Status status = Error(rc, Abbreviate(sql));
        sqlite3_finalize(stmt);
        statements_.erase(sql);
        return status;
      }
    } else if (sqlite3_stmt_busy(stmt)) {
      return absl::InternalError(absl::StrCat(
          "run store ", path_, ": statement in use twice: ", Abbreviate(sql)));
    }
    return Stmt(*this, stmt);
  }

  // Runs a fixed script (no values in it), for migrations.
  absl::Status Script(const char* sql, absl::string_view what) {
    const int rc = sqlite3_exec(handle_, sql, nullptr, nullptr, nullptr);
    return rc == SQLITE_OK ? absl::OkStatus() : Error(rc, what);
  }

  // The status for SQLite result code `rc`, naming the file and what failed.
  absl::Status Error(int rc, absl::string_view what) const {
    const char* detail = handle_ != nullptr && sqlite3_errcode(handle_) != 0
                             ? sqlite3_errmsg(handle_)
                             : sqlite3_errstr(rc);
    std::string message =
        absl::StrCat("run store ", path_, ": ", what, ": ", detail);
    switch (rc & 0xff) {
      case SQLITE_BUSY:
      case SQLITE_LOCKED:
      case SQLITE_IOERR:
      case SQLITE_PROTOCOL:
        return absl::UnavailableError(message);
      case SQLITE_CANTOPEN:
        return absl::UnavailableError(message);
      case SQLITE_NOTADB:
        return absl::FailedPreconditionError(
            absl::StrCat(message, " (the file was left unchanged)"));
      case SQLITE_CORRUPT:
        return absl::DataLossError(
            absl::StrCat(message, " (the file was left unchanged)"));
      case SQLITE_FULL:
        return absl::ResourceExhaustedError(message);
      case SQLITE_READONLY:
      case SQLITE_PERM:
      case SQLITE_AUTH:
        return absl::PermissionDeniedError(message);
      default:
        return absl::InternalError(message);
    }
  }

  static std::string Abbreviate(absl::string_view sql) {
    constexpr size_t kMax = 60;
    return sql.size() <= kMax ? std::string(sql)
                              : absl::StrCat(sql.substr(0, kMax), "...");
  }

 private:
  std::string path_;
  sqlite3* handle_;
  std::unordered_map<const char*, sqlite3_stmt*> statements_;
};

absl::StatusOr<bool> Stmt::Step() {
  if (bind_rc_ != SQLITE_OK) {
    return db_->Error(
        bind_rc_,
        absl::StrCat("binding values of ", Db::Abbreviate(sqlite3_sql(stmt_))));
  }
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_->Error(rc, Db::Abbreviate(sqlite3_sql(stmt_)));
}

absl::Status Stmt::Run() {
  LORA_ASSIGN_OR_RETURN(bool row, Step());
  if (row) {
    return absl::InternalError(
        absl::StrCat("run store ", db_->path(), ": unexpected row from ",
                     Db::Abbreviate(sqlite3_sql(stmt_))));
  }
  return absl::OkStatus();
}

}  // namespace sqlite_internal

namespace {

using sqlite_internal::Db;
using sqlite_internal::Stmt;

// ---------------------------------------------------------------------------
// Schema. Migration i (1-based) takes a file from version i - 1 to i; each
// runs in one transaction together with the version update. Append new
// migrations; never edit a released one.

// Enum values are lora.v1's (RunState, SweepState). events.kind: 1 run
// state, 3 sweep state; metric events are the rows of metric_points, which
// take sequence numbers from the same per-sweep counter
// (sweeps.last_sequence).
constexpr char kMigration1[] = R"sql(
CREATE TABLE schema_version (
  version INTEGER NOT NULL
);
INSERT INTO schema_version (version) VALUES (0);

CREATE TABLE sweeps (
  sweep_id TEXT NOT NULL PRIMARY KEY,
  name TEXT NOT NULL,
  spec_yaml TEXT NOT NULL,
  source_name TEXT NOT NULL,
  metric_name TEXT NOT NULL,
  metric_maximize INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
  cancelled INTEGER NOT NULL,
  state INTEGER NOT NULL,
  n_pending INTEGER NOT NULL,
  n_leased INTEGER NOT NULL,
  n_running INTEGER NOT NULL,
  n_succeeded INTEGER NOT NULL,
  n_failed INTEGER NOT NULL,
  n_cancelled INTEGER NOT NULL,
  create_ms INTEGER NOT NULL,
  end_ms INTEGER NOT NULL,
  last_sequence INTEGER NOT NULL
);
CREATE INDEX sweeps_by_create ON sweeps (create_ms, sweep_id);

CREATE TABLE runs (
  run_id TEXT NOT NULL PRIMARY KEY,
  sweep_id TEXT NOT NULL REFERENCES sweeps (sweep_id),
  idx INTEGER NOT NULL,
  config_yaml TEXT NOT NULL,
  config_hash TEXT NOT NULL,
  parameters_json TEXT NOT NULL,
  device TEXT NOT NULL,
  gpus INTEGER NOT NULL,
  cpu_threads INTEGER NOT NULL,
  params_total INTEGER NOT NULL,
  params_trainable INTEGER NOT NULL,
  params_lora INTEGER NOT NULL,
  params_head INTEGER NOT NULL,
  params_base INTEGER NOT NULL,
  state INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  max_attempts INTEGER NOT NULL,
  worker_id TEXT NOT NULL,
  lease_expire_ms INTEGER NOT NULL,
  error TEXT NOT NULL,
  checkpoint_artifact_id TEXT NOT NULL,
  adapter_artifact_id TEXT NOT NULL,
  start_ms INTEGER NOT NULL,
  end_ms INTEGER NOT NULL,
  create_ms INTEGER NOT NULL,
  step INTEGER NOT NULL,
  best_metric REAL,  -- NULL: none yet
  best_epoch INTEGER NOT NULL,
  UNIQUE (sweep_id, idx)
);
CREATE INDEX runs_by_state ON runs (state);

CREATE TABLE run_worker_labels (
  run_id TEXT NOT NULL REFERENCES runs (run_id),
  name TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (run_id, name)
) WITHOUT ROWID;

-- One row per leased attempt; outcome is '' while it runs, then SUCCEEDED,
-- FAILED, LEASE_EXPIRED or CANCELLED.
CREATE TABLE attempts (
  run_id TEXT NOT NULL REFERENCES runs (run_id),
  attempt INTEGER NOT NULL,
  worker_id TEXT NOT NULL,
  start_ms INTEGER NOT NULL,
  end_ms INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  error TEXT NOT NULL,
  PRIMARY KEY (run_id, attempt)
) WITHOUT ROWID;

CREATE TABLE metric_points (
  run_id TEXT NOT NULL REFERENCES runs (run_id),
  name TEXT NOT NULL,
  step INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  epoch INTEGER NOT NULL,
  value REAL,  -- NULL: NaN
  time_ms INTEGER NOT NULL,
  sweep_id TEXT NOT NULL REFERENCES sweeps (sweep_id),
  sequence INTEGER NOT NULL,
  PRIMARY KEY (run_id, name, step, attempt)
) WITHOUT ROWID;
CREATE UNIQUE INDEX metric_points_by_sequence
  ON metric_points (sweep_id, sequence);

CREATE TABLE events (
  sweep_id TEXT NOT NULL REFERENCES sweeps (sweep_id),
  sequence INTEGER NOT NULL,
  time_ms INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  run_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  state INTEGER NOT NULL,  -- RunState (kind 1) or SweepState (kind 3)
  worker_id TEXT NOT NULL,
  error TEXT NOT NULL,
  PRIMARY KEY (sweep_id, sequence)
) WITHOUT ROWID;

CREATE TABLE workers (
  worker_id TEXT NOT NULL PRIMARY KEY,
  name TEXT NOT NULL,
  capabilities BLOB NOT NULL,
  register_ms INTEGER NOT NULL,
  last_heartbeat_ms INTEGER NOT NULL
);

CREATE TABLE artifacts (
  artifact_id TEXT NOT NULL PRIMARY KEY,
  kind INTEGER NOT NULL,
  name TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  run_id TEXT NOT NULL,
  create_ms INTEGER NOT NULL
);
CREATE INDEX artifacts_by_create ON artifacts (create_ms, artifact_id);

CREATE TABLE artifact_files (
  artifact_id TEXT NOT NULL REFERENCES artifacts (artifact_id),
  path TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  PRIMARY KEY (artifact_id, path)
) WITHOUT ROWID;
)sql";

constexpr const char* kMigrations[] = {kMigration1};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) ==
                  SqliteRunStore::kSchemaVersion,
              "one migration per schema version");

constexpr int64_t kEventRunState = 1;
constexpr int64_t kEventMetric = 2;
constexpr int64_t kEventSweepState = 3;

// ---------------------------------------------------------------------------
// Statements. Values are always bound, never spliced into the text.

constexpr char kBeginRead[] = "BEGIN";
constexpr char kBeginWrite[] = "BEGIN IMMEDIATE";
constexpr char kCommit[] = "COMMIT";
constexpr char kRollback[] = "ROLLBACK";

constexpr char kProbe[] = "SELECT count(*) FROM sqlite_master";
constexpr char kHasVersionTable[] =
    "SELECT count(*) FROM sqlite_master "
    "WHERE type = 'table' AND name = 'schema_version'";
constexpr char kCountSchemaObjects[] = "SELECT count(*) FROM sqlite_master";
constexpr char kReadVersion[] = "SELECT version FROM schema_version";
constexpr char kWriteVersion[] = "UPDATE schema_version SET version = ?1";
constexpr char kJournalModeWal[] = "PRAGMA journal_mode = WAL";
constexpr char kSynchronousFull[] = "PRAGMA synchronous = FULL";
constexpr char kForeignKeysOn[] = "PRAGMA foreign_keys = ON";

#define LORA_SWEEP_COLUMNS                                                 \
  "sweep_id, name, spec_yaml, source_name, metric_name, metric_maximize, " \
  "priority, max_attempts, cancelled, state, n_pending, n_leased, "        \
  "n_running, n_succeeded, n_failed, n_cancelled, create_ms, end_ms, "     \
  "last_sequence"

constexpr char kSelectSweep[] =
    "SELECT " LORA_SWEEP_COLUMNS " FROM sweeps WHERE sweep_id = ?1";
constexpr char kInsertSweep[] =
    "INSERT INTO sweeps (" LORA_SWEEP_COLUMNS
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
    "?15, ?16, ?17, ?18, ?19)";
constexpr char kUpdateSweep[] =
    "UPDATE sweeps SET cancelled = ?2, state = ?3, n_pending = ?4, "
    "n_leased = ?5, n_running = ?6, n_succeeded = ?7, n_failed = ?8, "
    "n_cancelled = ?9, end_ms = ?10, last_sequence = ?11 WHERE sweep_id = ?1";
constexpr char kListSweepsFirst[] =
    "SELECT " LORA_SWEEP_COLUMNS
    " FROM sweeps ORDER BY create_ms DESC, sweep_id DESC LIMIT ?1";
constexpr char kListSweepsAfter[] =
    "SELECT " LORA_SWEEP_COLUMNS
    " FROM sweeps WHERE (create_ms, sweep_id) < (?2, ?3)"
    " ORDER BY create_ms DESC, sweep_id DESC LIMIT ?1";

#define LORA_RUN_COLUMNS                                                   \
  "r.run_id, r.sweep_id, r.idx, r.config_yaml, r.config_hash, "            \
  "r.parameters_json, r.device, r.gpus, r.cpu_threads, r.params_total, "   \
  "r.params_trainable, r.params_lora, r.params_head, r.params_base, "      \
  "r.state, r.attempt, r.max_attempts, r.worker_id, r.lease_expire_ms, "   \
  "r.error, r.checkpoint_artifact_id, r.adapter_artifact_id, r.start_ms, " \
  "r.end_ms, r.create_ms, r.step, r.best_metric, r.best_epoch"

constexpr char kSelectRun[] =
    "SELECT " LORA_RUN_COLUMNS " FROM runs AS r WHERE r.run_id = ?1";
constexpr char kRunsOfSweep[] = "SELECT " LORA_RUN_COLUMNS
                                " FROM runs AS r WHERE r.sweep_id = ?1"
                                " ORDER BY r.idx";
constexpr char kInsertRun[] =
    "INSERT INTO runs (run_id, sweep_id, idx, config_yaml, config_hash, "
    "parameters_json, device, gpus, cpu_threads, params_total, "
    "params_trainable, params_lora, params_head, params_base, state, attempt, "
    "max_attempts, worker_id, lease_expire_ms, error, checkpoint_artifact_id, "
    "adapter_artifact_id, start_ms, end_ms, create_ms, step, best_metric, "
    "best_epoch) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
    "?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, "
    "?27, ?28)";
constexpr char kUpdateRun[] =
    "UPDATE runs SET state = ?2, attempt = ?3, max_attempts = ?4, "
    "worker_id = ?5, lease_expire_ms = ?6, error = ?7, "
    "checkpoint_artifact_id = ?8, adapter_artifact_id = ?9, start_ms = ?10, "
    "end_ms = ?11, step = ?12, best_metric = ?13, best_epoch = ?14 "
    "WHERE run_id = ?1";
constexpr char kRunSweepId[] = "SELECT sweep_id FROM runs WHERE run_id = ?1";
// Paging in (sweep create time, sweep id, index) order after the cursor
// (?2, ?3, ?4); ?1 is a bit mask of the states wanted (bit = state value).
constexpr char kListRuns[] =
    "SELECT " LORA_RUN_COLUMNS
    " FROM runs AS r JOIN sweeps AS s ON s.sweep_id = r.sweep_id"
    " WHERE ((?1 >> r.state) & 1) = 1"
    " AND (s.create_ms, r.sweep_id, r.idx) > (?2, ?3, ?4)"
    " ORDER BY s.create_ms, r.sweep_id, r.idx LIMIT ?5";
constexpr char kListRunsOfSweep[] =
    "SELECT " LORA_RUN_COLUMNS
    " FROM runs AS r JOIN sweeps AS s ON s.sweep_id = r.sweep_id"
    " WHERE r.sweep_id = ?6 AND ((?1 >> r.state) & 1) = 1"
    " AND (s.create_ms, r.sweep_id, r.idx) > (?2, ?3, ?4)"
    " ORDER BY s.create_ms, r.sweep_id, r.idx LIMIT ?5";

constexpr char kSelectLabels[] =
    "SELECT name, value FROM run_worker_labels WHERE run_id = ?1 "
    "ORDER BY name";
constexpr char kInsertLabel[] =
    "INSERT INTO run_worker_labels (run_id, name, value) VALUES (?1, ?2, ?3)";

constexpr char kInsertAttempt[] =
    "INSERT INTO attempts (run_id, attempt, worker_id, start_ms, end_ms, "
    "outcome, error) VALUES (?1, ?2, ?3, ?4, 0, '', '')";
constexpr char kEndAttempt[] =
    "UPDATE attempts SET end_ms = ?3, outcome = ?4, error = ?5 "
    "WHERE run_id = ?1 AND attempt = ?2";

constexpr char kInsertEvent[] =
    "INSERT INTO events (sweep_id, sequence, time_ms, kind, run_id, attempt, "
    "state, worker_id, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
constexpr char kReadEvents[] =
    "SELECT sequence, time_ms, kind, run_id, attempt, state, worker_id, error,"
    " '', 0, 0, NULL FROM events WHERE sweep_id = ?1 AND sequence > ?2"
    " ORDER BY sequence LIMIT ?3";
constexpr char kReadEventsWithMetrics[] =
    "SELECT sequence, time_ms, kind, run_id, attempt, state, worker_id, error,"
    " '', 0, 0, NULL FROM events WHERE sweep_id = ?1 AND sequence > ?2"
    " UNION ALL"
    " SELECT sequence, time_ms, 2, run_id, attempt, 0, '', '', name, step,"
    " epoch, value FROM metric_points WHERE sweep_id = ?1 AND sequence > ?2"
    " ORDER BY 1 LIMIT ?3";

// The conflict target is the primary key only: any other constraint
// failure (a reused sequence number) is an error, not a duplicate.
constexpr char kInsertMetric[] =
    "INSERT INTO metric_points (run_id, name, step, attempt, epoch, value, "
    "time_ms, sweep_id, sequence) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
    "ON CONFLICT (run_id, name, step, attempt) DO NOTHING";
constexpr char kOlderAttemptPoint[] =
    "SELECT 1 FROM metric_points WHERE run_id = ?1 AND name = ?2 "
    "AND step = ?3 AND attempt < ?4 LIMIT 1";
// For each (name, step) the point of the highest attempt.
constexpr char kSeriesOfName[] =
    "SELECT m.name, m.step, m.attempt, m.epoch, m.value, m.time_ms, "
    "m.sequence FROM metric_points AS m WHERE m.run_id = ?1 AND m.name = ?2 "
    "AND m.attempt = (SELECT max(o.attempt) FROM metric_points AS o "
    "WHERE o.run_id = m.run_id AND o.name = m.name AND o.step = m.step) "
    "ORDER BY m.name, m.step";
constexpr char kSeriesAll[] =
    "SELECT m.name, m.step, m.attempt, m.epoch, m.value, m.time_ms, "
    "m.sequence FROM metric_points AS m WHERE m.run_id = ?1 "
    "AND m.attempt = (SELECT max(o.attempt) FROM metric_points AS o "
    "WHERE o.run_id = m.run_id AND o.name = m.name AND o.step = m.step) "
    "ORDER BY m.name, m.step";

constexpr char kUpsertWorker[] =
    "INSERT INTO workers (worker_id, name, capabilities, register_ms, "
    "last_heartbeat_ms) VALUES (?1, ?2, ?3, ?4, ?5) "
    "ON CONFLICT (worker_id) DO UPDATE SET name = excluded.name, "
    "capabilities = excluded.capabilities, register_ms = excluded.register_ms,"
    " last_heartbeat_ms = excluded.last_heartbeat_ms";
constexpr char kListWorkers[] =
    "SELECT worker_id, name, capabilities, register_ms, last_heartbeat_ms "
    "FROM workers ORDER BY worker_id";

constexpr char kInsertArtifact[] =
    "INSERT INTO artifacts (artifact_id, kind, name, size_bytes, run_id, "
    "create_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
    "ON CONFLICT (artifact_id) DO NOTHING";
constexpr char kInsertArtifactFile[] =
    "INSERT INTO artifact_files (artifact_id, path, size_bytes, sha256) "
    "VALUES (?1, ?2, ?3, ?4)";
#define LORA_ARTIFACT_COLUMNS \
  "artifact_id, kind, name, size_bytes, run_id, create_ms"
constexpr char kSelectArtifact[] =
    "SELECT " LORA_ARTIFACT_COLUMNS " FROM artifacts WHERE artifact_id = ?1";
constexpr char kArtifactFiles[] =
    "SELECT path, size_bytes, sha256 FROM artifact_files "
    "WHERE artifact_id = ?1 ORDER BY path";
constexpr char kListArtifactsFirst[] =
    "SELECT " LORA_ARTIFACT_COLUMNS
    " FROM artifacts WHERE (?2 = 0 OR kind = ?2) AND (?3 = '' OR run_id = ?3)"
    " ORDER BY create_ms DESC, artifact_id DESC LIMIT ?1";
constexpr char kListArtifactsAfter[] =
    "SELECT " LORA_ARTIFACT_COLUMNS
    " FROM artifacts WHERE (?2 = 0 OR kind = ?2) AND (?3 = '' OR run_id = ?3)"
    " AND (create_ms, artifact_id) < (?4, ?5)"
    " ORDER BY create_ms DESC, artifact_id DESC LIMIT ?1";

#undef LORA_SWEEP_COLUMNS
#undef LORA_RUN_COLUMNS
#undef LORA_ARTIFACT_COLUMNS

// ---------------------------------------------------------------------------
// Helpers. All run inside a transaction of the caller.

absl::Status RunOnce(Db& db, const char* sql) {
  LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(sql));
  return stmt.Run();
}

// Runs `body` between `begin` and COMMIT; rolls back when anything fails.
absl::Status InTransaction(Db& db, const char* begin,
                           absl::FunctionRef<absl::Status()> body) {
  LORA_RETURN_IF_ERROR(RunOnce(db, begin));
  absl::Status status = body();
  if (status.ok()) {
    status = RunOnce(db, kCommit);
    if (status.ok()) return status;
  }
  // Some errors (I/O, full disk) have rolled the transaction back already.
  if (sqlite3_get_autocommit(db.handle()) == 0) {
    RunOnce(db, kRollback).IgnoreError();
  }
  return status;
}

absl::Status Corrupt(const Db& db, absl::string_view what) {
  return absl::DataLossError(absl::StrCat("run store ", db.path(), ": ", what));
}

absl::StatusOr<RunState> ToRunState(const Db& db, int64_t value) {
  if (value < static_cast<int64_t>(RunState::kPending) ||
      value > static_cast<int64_t>(RunState::kCancelled)) {
    return Corrupt(db, absl::StrCat("invalid run state ", value));
  }
  return static_cast<RunState>(value);
}

absl::StatusOr<SweepState> ToSweepState(const Db& db, int64_t value) {
  if (value < static_cast<int64_t>(SweepState::kPending) ||
      value > static_cast<int64_t>(SweepState::kCancelled)) {
    return Corrupt(db, absl::StrCat("invalid sweep state ", value));
  }
  return static_cast<SweepState>(value);
}

absl::StatusOr<int64_t> QueryInt(Db& db, const char* sql) {
  LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(sql));
  LORA_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return Corrupt(db, absl::StrCat("no row from ", sql));
  return stmt.ColInt(0);
}

// The file's schema version, 0 for an empty database. Reads only.
absl::StatusOr<int64_t> ReadSchemaVersion(Db& db) {
  LORA_ASSIGN_OR_RETURN(int64_t has_table, QueryInt(db, kHasVersionTable));
  if (has_table == 0) {
    LORA_ASSIGN_OR_RETURN(int64_t objects, QueryInt(db, kCountSchemaObjects));
    if (objects > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "run store ", db.path(),
          ": a SQLite database without a schema_version table, so not a "
          "lora-sweep run store; the file was left unchanged"));
    }
    return 0;
  }
  LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kReadVersion));
  LORA_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return Corrupt(db, "schema_version has no row");
  const int64_t version = stmt.ColInt(0);
  LORA_ASSIGN_OR_RETURN(bool second, stmt.Step());
  if (second) return Corrupt(db, "schema_version has more than one row");
  return version;
}

absl::Status CheckNotNewer(const Db& db, int64_t version) {
  if (version <= SqliteRunStore::kSchemaVersion) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "run store ", db.path(), " has schema version ", version,
      ", newer than this build knows (", SqliteRunStore::kSchemaVersion,
      "); open it with a newer lorad. The file was left unchanged"));
}

absl::Status Configure(Db& db) {
  {
    LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kJournalModeWal));
    LORA_ASSIGN_OR_RETURN(bool row, stmt.Step());
    const std::string mode = row ? stmt.ColText(0) : "";
    if (mode != "wal") {
      return absl::FailedPreconditionError(
          absl::StrCat("run store ", db.path(),
                       ": cannot use WAL journal mode (got \"", mode, "\")"));
    }
  }
  LORA_RETURN_IF_ERROR(RunOnce(db, kSynchronousFull));
  return RunOnce(db, kForeignKeysOn);
}

absl::Status Migrate(Db& db) {
  for (int64_t target = 1; target <= SqliteRunStore::kSchemaVersion; ++target) {
    LORA_RETURN_IF_ERROR(InTransaction(db, kBeginWrite, [&]() -> absl::Status {
      // Read again under the write lock: another process may have migrated.
      LORA_ASSIGN_OR_RETURN(int64_t version, ReadSchemaVersion(db));
      LORA_RETURN_IF_ERROR(CheckNotNewer(db, version));
      if (version >= target) return absl::OkStatus();
      LORA_RETURN_IF_ERROR(
          db.Script(kMigrations[target - 1],
                    absl::StrCat("migrating from schema version ", version,
                                 " to ", target)));
      LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kWriteVersion));
      return stmt.Int(1, target).Run();
    }));
  }
  return absl::OkStatus();
}

absl::StatusOr<SweepRecord> ReadSweepRow(const Db& db, const Stmt& stmt) {
  SweepRecord sweep;
  sweep.sweep_id = stmt.ColText(0);
  sweep.name = stmt.ColText(1);
  sweep.spec_yaml = stmt.ColText(2);
  sweep.source_name = stmt.ColText(3);
  sweep.metric_name = stmt.ColText(4);
  sweep.metric_maximize = stmt.ColInt(5) != 0;
  sweep.priority = stmt.ColInt(6);
  sweep.max_attempts = stmt.ColInt(7);
  sweep.cancelled = stmt.ColInt(8) != 0;
  LORA_ASSIGN_OR_RETURN(sweep.state, ToSweepState(db, stmt.ColInt(9)));
  sweep.counts.pending = stmt.ColInt(10);
  sweep.counts.leased = stmt.ColInt(11);
  sweep.counts.running = stmt.ColInt(12);
  sweep.counts.succeeded = stmt.ColInt(13);
  sweep.counts.failed = stmt.ColInt(14);
  sweep.counts.cancelled = stmt.ColInt(15);
  sweep.create_ms = stmt.ColInt(16);
  sweep.end_ms = stmt.ColInt(17);
  sweep.last_sequence = stmt.ColInt(18);
  return sweep;
}

absl::StatusOr<std::optional<SweepRecord>> FindSweep(
    Db& db, const std::string& sweep_id) {
  LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kSelectSweep));
  LORA_ASSIGN_OR_RETURN(bool row, stmt.Text(1, sweep_id).Step());
  if (!row) return std::nullopt;
  return ReadSweepRow(db, stmt);
}

absl::StatusOr<SweepRecord> LoadSweep(Db& db, const std::string& sweep_id) {
  LORA_ASSIGN_OR_RETURN(std::optional<SweepRecord> sweep,
                        FindSweep(db, sweep_id));
  if (!sweep.has_value()) {
    return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, " not found"));
  }
  return *std::move(sweep);
}

absl::Status InsertSweep(Db& db, const SweepRecord& sweep) {
  LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kInsertSweep));
  return stmt.Text(1, sweep.sweep_id)
      .Text(2, sweep.name)
      .Text(3, sweep.spec_yaml)
      .Text(4, sweep.source_name)
      .Text(5, sweep.metric_name)
      .Int(6, sweep.metric_maximize)
      .Int(7, sweep.priority)
      .Int(8, sweep.max_attempts)
      .Int(9, sweep.cancelled)
      .Int(10, static_cast<int64_t>(sweep.state))
      .Int(11, sweep.counts.pending)
      .Int(12, sweep.counts.leased)
      .Int(13, sweep.counts.running)
      .Int(14, sweep.counts.succeeded)
      .Int(15, sweep.counts.failed)
      .Int(16, sweep.counts.cancelled)
      .Int(17, sweep.create_ms)
      .Int(18, sweep.end_ms)
      .Int(19, sweep.last_sequence)
      .Run();
}

// Writes the fields the store maintains.
absl::Status UpdateSweep(Db& db, const SweepRecord& sweep) {
  LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kUpdateSweep));
  return stmt.Text(1, sweep.sweep_id)
      .Int(2, sweep.cancelled)
      .Int(3, static_cast<int64_t>(sweep.state))
      .Int(4, sweep.counts.pending)
      .Int(5, sweep.counts.leased)
      .Int(6, sweep.counts.running)
      .Int(7, sweep.counts.succeeded)
      .Int(8, sweep.counts.failed)
      .Int(9, sweep.counts.cancelled)
      .Int(10, sweep.end_ms)
      .Int(11, sweep.last_sequence)
      .Run();
}

absl::StatusOr<RunRecord> ReadRunRow(Db& db, const Stmt& stmt) {
  RunRecord run;
  run.run_id = stmt.ColText(0);
  run.sweep_id = stmt.ColText(1);
  run.index = stmt.ColInt(2);
  run.config_yaml = stmt.ColText(3);
  run.config_hash = stmt.ColText(4);
  run.parameters_json = stmt.ColText(5);
  run.device = stmt.ColText(6);
  run.gpus = stmt.ColInt(7);
  run.cpu_threads = stmt.ColInt(8);
  run.counts.total = stmt.ColInt(9);
  run.counts.trainable = stmt.ColInt(10);
  run.counts.lora = stmt.ColInt(11);
  run.counts.head = stmt.ColInt(12);
  run.counts.base = stmt.ColInt(13);
  RunLifecycle& life = run.lifecycle;
  LORA_ASSIGN_OR_RETURN(life.state, ToRunState(db, stmt.ColInt(14)));
  life.attempt = stmt.ColInt(15);
  life.max_attempts = stmt.ColInt(16);
  life.worker_id = stmt.ColText(17);
  life.lease_expire_ms = stmt.ColInt(18);
  life.error = stmt.ColText(19);
  life.checkpoint_artifact_id = stmt.ColText(20);
  life.adapter_artifact_id = stmt.ColText(21);
  life.start_ms = stmt.ColInt(22);
  life.end_ms = stmt.ColInt(23);
  run.create_ms = stmt.ColInt(24);
  run.step = stmt.ColInt(25);
  run.best_metric = stmt.ColOptReal(26);
  run.best_epoch = stmt.ColInt(27);

  LORA_ASSIGN_OR_RETURN(Stmt labels, db.Prepare(kSelectLabels));
  labels.Text(1, run.run_id);
  while (true) {
    LORA_ASSIGN_OR_RETURN(bool row, labels.Step());
    if (!row) break;
    run.worker_labels[labels.ColText(0)] = labels.ColText(1);
  }
  return run;
}

absl::StatusOr<RunRecord> LoadRun(Db& db, const std::string& run_id) {
  LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kSelectRun));
  LORA_ASSIGN_OR_RETURN(bool row, stmt.Text(1, run_id).Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat("run ", run_id, " not found"));
  }
  return ReadRunRow(db, stmt);
}

// Reads every row of `stmt` as a run.
absl::StatusOr<std::vector<RunRecord>> ReadRuns(Db& db, Stmt& stmt) {
  std::vector<RunRecord> runs;
  while (true) {
    LORA_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return runs;
    LORA_ASSIGN_OR_RETURN(RunRecord run, ReadRunRow(db, stmt));
    runs.push_back(std::move(run));
  }
}

absl::Status InsertRun(Db& db, const RunRecord& run) {
  const RunLifecycle& life = run.lifecycle;
  {
    LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kInsertRun));
    LORA_RETURN_IF_ERROR(stmt.Text(1, run.run_id)
                             .Text(2, run.sweep_id)
                             .Int(3, run.index)
                             .Text(4, run.config_yaml)
                             .Text(5, run.config_hash)
                             .Text(6, run.parameters_json)
                             .Text(7, run.device)
                             .Int(8, run.gpus)
                             .Int(9, run.cpu_threads)
                             .Int(10, run.counts.total)
                             .Int(11, run.counts.trainable)
                             .Int(12, run.counts.lora)
                             .Int(13, run.counts.head)
                             .Int(14, run.counts.base)
                             .Int(15, static_cast<int64_t>(life.state))
                             .Int(16, life.attempt)
                             .Int(17, life.max_attempts)
                             .Text(18, life.worker_id)
                             .Int(19, life.lease_expire_ms)
                             .Text(20, life.error)
                             .Text(21, life.checkpoint_artifact_id)
                             .Text(22, life.adapter_artifact_id)
                             .Int(23, life.start_ms)
                             .Int(24, life.end_ms)
                             .Int(25, run.create_ms)
                             .Int(26, run.step)
                             .OptReal(27, run.best_metric)
                             .Int(28, run.best_epoch)
                             .Run());
  }
  for (const auto& [name, value] : run.worker_labels) {
    LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kInsertLabel));
    LORA_RETURN_IF_ERROR(
        stmt.Text(1, run.run_id).Text(2, name).Text(3, value).Run());
  }
  return absl::OkStatus();
}

// Writes the fields that change after creation.
absl::Status UpdateRun(Db& db, const RunRecord& run) {
  const RunLifecycle& life = run.lifecycle;
  LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kUpdateRun));
  return stmt.Text(1, run.run_id)
      .Int(2, static_cast<int64_t>(life.state))
      .Int(3, life.attempt)
      .Int(4, life.max_attempts)
      .Text(5, life.worker_id)
      .Int(6, life.lease_expire_ms)
      .Text(7, life.error)
      .Text(8, life.checkpoint_artifact_id)
      .Text(9, life.adapter_artifact_id)
      .Int(10, life.start_ms)
      .Int(11, life.end_ms)
      .Int(12, run.step)
      .OptReal(13, run.best_metric)
      .Int(14, run.best_epoch)
      .Run();
}

// Gives `event` the sweep's next sequence number and stores it (the caller
// writes the sweep's last_sequence).
absl::Status AppendEvent(Db& db, SweepRecord& sweep, EventRecord event) {
  event.sequence = ++sweep.last_sequence;
  const bool run_event = event.kind == EventRecord::Kind::kRunState;
  LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kInsertEvent));
  return stmt.Text(1, sweep.sweep_id)
      .Int(2, event.sequence)
      .Int(3, event.time_ms)
      .Int(4, run_event ? kEventRunState : kEventSweepState)
      .Text(5, event.run_id)
      .Int(6, event.attempt)
      .Int(7, run_event ? static_cast<int64_t>(event.run_state)
                        : static_cast<int64_t>(event.sweep_state))
      .Text(8, event.worker_id)
      .Text(9, event.error)
      .Run();
}

bool HoldsLease(RunState state) {
  return state == RunState::kLeased || state == RunState::kRunning;
}

// Writes the run after a transition, its attempt row, and, if its state
// changed, the sweep's counts and a RunStateChanged event.
absl::Status ChangeRun(Db& db, SweepRecord& sweep, RunRecord& run,
                       const RunLifecycle& next,
                       const RunTransition& transition) {
  const RunLifecycle before = run.lifecycle;
  store_logic::SetLifecycle(run, next);
  LORA_RETURN_IF_ERROR(UpdateRun(db, run));
  if (before.state == RunState::kPending && next.state == RunState::kLeased) {
    LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kInsertAttempt));
    LORA_RETURN_IF_ERROR(stmt.Text(1, run.run_id)
                             .Int(2, next.attempt)
                             .Text(3, next.worker_id)
                             .Int(4, transition.now_ms)
                             .Run());
  }
  if (HoldsLease(before.state) && !HoldsLease(next.state)) {
    const bool failed = transition.kind == RunTransition::Kind::kFail ||
                        transition.kind == RunTransition::Kind::kExpireLease;
    LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kEndAttempt));
    LORA_RETURN_IF_ERROR(
        stmt.Text(1, run.run_id)
            .Int(2, before.attempt)
            .Int(3, transition.now_ms)
            .Text(4, store_logic::AttemptOutcome(transition, next.state))
            .Text(5, failed ? next.error : "")
            .Run());
  }
  if (before.state == next.state) return absl::OkStatus();
  store_logic::CountTransition(sweep, before.state, next.state);
  return AppendEvent(db, sweep,
                     store_logic::RunStateEvent(sweep.sweep_id, run.run_id,
                                                before, next, transition));
}

absl::Status Rederive(Db& db, SweepRecord& sweep, int64_t now_ms) {
  std::optional<EventRecord> event =
      store_logic::RederiveSweepState(sweep, now_ms);
  if (!event.has_value()) return absl::OkStatus();
  return AppendEvent(db, sweep, *std::move(event));
}

absl::StatusOr<std::vector<MetricRecord>> Series(Db& db,
                                                 const std::string& run_id,
                                                 const std::string& name) {
  LORA_ASSIGN_OR_RETURN(Stmt stmt,
                        db.Prepare(name.empty() ? kSeriesAll : kSeriesOfName));
  stmt.Text(1, run_id);
  if (!name.empty()) stmt.Text(2, name);
  std::vector<MetricRecord> series;
  while (true) {
    LORA_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return series;
    MetricRecord record;
    record.run_id = run_id;
    record.point.name = stmt.ColText(0);
    record.point.step = stmt.ColInt(1);
    record.attempt = stmt.ColInt(2);
    record.point.epoch = stmt.ColInt(3);
    record.point.value = stmt.ColReal(4);
    record.point.time_ms = stmt.ColInt(5);
    record.sequence = stmt.ColInt(6);
    series.push_back(std::move(record));
  }
}

absl::StatusOr<std::vector<ArtifactRecord>> ReadArtifacts(Db& db, Stmt& stmt) {
  std::vector<ArtifactRecord> artifacts;
  while (true) {
    LORA_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return artifacts;
    ArtifactRecord artifact;
    artifact.artifact_id = stmt.ColText(0);
    artifact.kind = stmt.ColInt(1);
    artifact.name = stmt.ColText(2);
    artifact.size_bytes = stmt.ColInt(3);
    artifact.run_id = stmt.ColText(4);
    artifact.create_ms = stmt.ColInt(5);
    artifacts.push_back(std::move(artifact));
  }
}

}  // namespace

// ---------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<SqliteRunStore>> SqliteRunStore::Open(
    const std::string& path, const SqliteOptions& options) {
  if (path.empty()) {
    return absl::InvalidArgumentError("SqliteRunStore::Open: empty path");
  }
  sqlite3* handle = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &handle,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      nullptr);
  // The Db owns the handle from here on, even when opening failed.
  auto db = std::make_unique<Db>(path, handle);
  if (rc != SQLITE_OK) return db->Error(rc, "cannot open");
  sqlite3_extended_result_codes(handle, 1);
  sqlite3_busy_timeout(handle, static_cast<int>(std::clamp<int64_t>(
                                   options.busy_timeout_ms, 0,
                                   std::numeric_limits<int>::max())));
  // Read the version before anything writes: a file this build must refuse
  // (not a database, another program's database, a newer schema) is left
  // byte for byte as it was.
  LORA_RETURN_IF_ERROR(
      db->Script(kProbe, "cannot read it as a SQLite database"));
  LORA_ASSIGN_OR_RETURN(int64_t version, ReadSchemaVersion(*db));
  LORA_RETURN_IF_ERROR(CheckNotNewer(*db, version));
  LORA_RETURN_IF_ERROR(Configure(*db));
  LORA_RETURN_IF_ERROR(Migrate(*db));
  return std::unique_ptr<SqliteRunStore>(new SqliteRunStore(std::move(db)));
}

SqliteRunStore::SqliteRunStore(std::unique_ptr<Db> db) : db_(std::move(db)) {}

SqliteRunStore::~SqliteRunStore() = default;

absl::Status SqliteRunStore::Transact(
    Mode mode, absl::FunctionRef<absl::Status(Db&)> body) {
  absl::MutexLock lock(&mu_);
  Db& db = *db_;
  return InTransaction(db, mode == Mode::kWrite ? kBeginWrite : kBeginRead,
                       [&] { return body(db); });
}

absl::StatusOr<CreateSweepResult> SqliteRunStore::CreateSweep(
    const SweepRecord& sweep, const std::vector<RunRecord>& runs) {
  SweepRecord new_sweep = sweep;
  std::vector<RunRecord> new_runs = runs;
  LORA_RETURN_IF_ERROR(store_logic::PrepareNewSweep(new_sweep, new_runs));
  CreateSweepResult result;
  LORA_RETURN_IF_ERROR(Transact(Mode::kWrite, [&](Db& db) -> absl::Status {
    LORA_ASSIGN_OR_RETURN(std::optional<SweepRecord> existing,
                          FindSweep(db, new_sweep.sweep_id));
    if (existing.has_value()) {
      result = {*std::move(existing), /*already_existed=*/true};
      return absl::OkStatus();
    }
    for (const RunRecord& run : new_runs) {
      LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kRunSweepId));
      LORA_ASSIGN_OR_RETURN(bool row, stmt.Text(1, run.run_id).Step());
      if (row) {
        return absl::AlreadyExistsError(
            absl::StrCat("CreateSweep: run ", run.run_id,
                         " already belongs to sweep ", stmt.ColText(0)));
      }
    }
    LORA_RETURN_IF_ERROR(InsertSweep(db, new_sweep));
    for (const RunRecord& run : new_runs) {
      LORA_RETURN_IF_ERROR(InsertRun(db, run));
    }
    result = {new_sweep, /*already_existed=*/false};
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<SweepRecord> SqliteRunStore::GetSweep(
    const std::string& sweep_id) {
  SweepRecord sweep;
  LORA_RETURN_IF_ERROR(Transact(Mode::kRead, [&](Db& db) -> absl::Status {
    LORA_ASSIGN_OR_RETURN(sweep, LoadSweep(db, sweep_id));
    return absl::OkStatus();
  }));
  return sweep;
}

absl::StatusOr<std::vector<SweepRecord>> SqliteRunStore::ListSweeps(
    const std::string& after_sweep_id, int64_t limit) {
  LORA_RETURN_IF_ERROR(store_logic::CheckLimit(limit, "ListSweeps"));
  std::vector<SweepRecord> sweeps;
  LORA_RETURN_IF_ERROR(Transact(Mode::kRead, [&](Db& db) -> absl::Status {
    std::optional<SweepRecord> after;
    if (!after_sweep_id.empty()) {
      LORA_ASSIGN_OR_RETURN(after, LoadSweep(db, after_sweep_id));
    }
    LORA_ASSIGN_OR_RETURN(
        Stmt stmt, db.Prepare(after ? kListSweepsAfter : kListSweepsFirst));
    stmt.Int(1, limit);
    if (after) stmt.Int(2, after->create_ms).Text(3, after->sweep_id);
    while (true) {
      LORA_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) return absl::OkStatus();
      LORA_ASSIGN_OR_RETURN(SweepRecord sweep, ReadSweepRow(db, stmt));
      sweeps.push_back(std::move(sweep));
    }
  }));
  return sweeps;
}

absl::StatusOr<RunRecord> SqliteRunStore::GetRun(const std::string& run_id) {
  RunRecord run;
  LORA_RETURN_IF_ERROR(Transact(Mode::kRead, [&](Db& db) -> absl::Status {
    LORA_ASSIGN_OR_RETURN(run, LoadRun(db, run_id));
    return absl::OkStatus();
  }));
  return run;
}

absl::StatusOr<std::vector<RunRecord>> SqliteRunStore::ListRuns(
    const RunFilter& filter) {
  LORA_RETURN_IF_ERROR(store_logic::CheckLimit(filter.limit, "ListRuns"));
  int64_t state_mask = 0;
  for (RunState state : filter.states) {
    state_mask |= int64_t{1} << static_cast<int>(state);
  }
  if (filter.states.empty()) state_mask = ~int64_t{0};
  std::vector<RunRecord> runs;
  LORA_RETURN_IF_ERROR(Transact(Mode::kRead, [&](Db& db) -> absl::Status {
    if (!filter.sweep_id.empty()) {
      LORA_RETURN_IF_ERROR(LoadSweep(db, filter.sweep_id).status());
    }
    // The cursor: the (sweep create time, sweep id, index) of the run to
    // start after, or one below every run (sweep ids are not empty).
    int64_t after_create_ms = std::numeric_limits<int64_t>::min();
    std::string after_sweep_id;
    int64_t after_index = std::numeric_limits<int64_t>::min();
    if (!filter.after_run_id.empty()) {
      LORA_ASSIGN_OR_RETURN(RunRecord after, LoadRun(db, filter.after_run_id));
      LORA_ASSIGN_OR_RETURN(SweepRecord sweep, LoadSweep(db, after.sweep_id));
      after_create_ms = sweep.create_ms;
      after_sweep_id = after.sweep_id;
      after_index = after.index;
    }
    LORA_ASSIGN_OR_RETURN(
        Stmt stmt,
        db.Prepare(filter.sweep_id.empty() ? kListRuns : kListRunsOfSweep));
    stmt.Int(1, state_mask)
        .Int(2, after_create_ms)
        .Text(3, after_sweep_id)
        .Int(4, after_index)
        .Int(5, filter.limit);
    if (!filter.sweep_id.empty()) stmt.Text(6, filter.sweep_id);
    LORA_ASSIGN_OR_RETURN(runs, ReadRuns(db, stmt));
    return absl::OkStatus();
  }));
  return runs;
}

absl::StatusOr<RunRecord> SqliteRunStore::TransitionRun(
    const std::string& run_id, const RunTransition& transition) {
  RunRecord run;
  LORA_RETURN_IF_ERROR(Transact(Mode::kWrite, [&](Db& db) -> absl::Status {
    LORA_ASSIGN_OR_RETURN(run, LoadRun(db, run_id));
    LORA_ASSIGN_OR_RETURN(RunLifecycle next,
                          ApplyTransition(run_id, run.lifecycle, transition));
    LORA_ASSIGN_OR_RETURN(SweepRecord sweep, LoadSweep(db, run.sweep_id));
    const int64_t last_sequence = sweep.last_sequence;
    LORA_RETURN_IF_ERROR(ChangeRun(db, sweep, run, next, transition));
    LORA_RETURN_IF_ERROR(Rederive(db, sweep, transition.now_ms));
    // Counts and state change only together with an event.
    if (sweep.last_sequence != last_sequence) {
      LORA_RETURN_IF_ERROR(UpdateSweep(db, sweep));
    }
    return absl::OkStatus();
  }));
  return run;
}

absl::StatusOr<SweepRecord> SqliteRunStore::CancelSweep(
    const std::string& sweep_id, int64_t now_ms) {
  SweepRecord sweep;
  LORA_RETURN_IF_ERROR(Transact(Mode::kWrite, [&](Db& db) -> absl::Status {
    LORA_ASSIGN_OR_RETURN(sweep, LoadSweep(db, sweep_id));
    if (sweep.state == SweepState::kSucceeded ||
        sweep.state == SweepState::kFailed ||
        sweep.state == SweepState::kCancelled) {
      return absl::OkStatus();
    }
    std::vector<RunRecord> runs;
    {
      LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kRunsOfSweep));
      stmt.Text(1, sweep_id);
      LORA_ASSIGN_OR_RETURN(runs, ReadRuns(db, stmt));
    }
    RunTransition cancel;
    cancel.kind = RunTransition::Kind::kCancel;
    cancel.now_ms = now_ms;
    for (RunRecord& run : runs) {
      if (IsTerminal(run.lifecycle.state)) continue;
      LORA_ASSIGN_OR_RETURN(RunLifecycle next,
                            ApplyTransition(run.run_id, run.lifecycle, cancel));
      LORA_RETURN_IF_ERROR(ChangeRun(db, sweep, run, next, cancel));
    }
    sweep.cancelled = true;
    LORA_RETURN_IF_ERROR(Rederive(db, sweep, now_ms));
    return UpdateSweep(db, sweep);
  }));
  return sweep;
}

absl::StatusOr<int64_t> SqliteRunStore::RequeueFailedRuns(
    const std::string& sweep_id, int64_t now_ms) {
  int64_t requeued = 0;
  LORA_RETURN_IF_ERROR(Transact(Mode::kWrite, [&](Db& db) -> absl::Status {
    LORA_ASSIGN_OR_RETURN(SweepRecord sweep, LoadSweep(db, sweep_id));
    std::vector<RunRecord> runs;
    {
      LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kRunsOfSweep));
      stmt.Text(1, sweep_id);
      LORA_ASSIGN_OR_RETURN(runs, ReadRuns(db, stmt));
    }
    RunTransition requeue;
    requeue.kind = RunTransition::Kind::kRequeue;
    requeue.now_ms = now_ms;
    requeue.max_attempts = sweep.max_attempts;
    for (RunRecord& run : runs) {
      if (run.lifecycle.state != RunState::kFailed &&
          run.lifecycle.state != RunState::kCancelled) {
        continue;
      }
      LORA_ASSIGN_OR_RETURN(
          RunLifecycle next,
          ApplyTransition(run.run_id, run.lifecycle, requeue));
      LORA_RETURN_IF_ERROR(ChangeRun(db, sweep, run, next, requeue));
      ++requeued;
    }
    sweep.cancelled = false;
    LORA_RETURN_IF_ERROR(Rederive(db, sweep, now_ms));
    return UpdateSweep(db, sweep);
  }));
  return requeued;
}

absl::StatusOr<AppendMetricsResult> SqliteRunStore::AppendMetrics(
    const std::string& run_id, int64_t attempt,
    const std::vector<MetricPoint>& points, int64_t now_ms) {
  AppendMetricsResult result;
  LORA_RETURN_IF_ERROR(Transact(Mode::kWrite, [&](Db& db) -> absl::Status {
    RunRecord& run = result.run;
    LORA_ASSIGN_OR_RETURN(run, LoadRun(db, run_id));
    LORA_RETURN_IF_ERROR(store_logic::CheckMetricsAllowed(run, attempt));
    LORA_ASSIGN_OR_RETURN(SweepRecord sweep, LoadSweep(db, run.sweep_id));
    const int64_t last_sequence = sweep.last_sequence;
    if (run.lifecycle.state == RunState::kLeased) {
      RunTransition start;
      start.kind = RunTransition::Kind::kStart;
      start.now_ms = now_ms;
      start.worker_id = run.lifecycle.worker_id;
      start.attempt = attempt;
      LORA_ASSIGN_OR_RETURN(RunLifecycle next,
                            ApplyTransition(run_id, run.lifecycle, start));
      LORA_RETURN_IF_ERROR(ChangeRun(db, sweep, run, next, start));
    }
    const bool maximize = sweep.metric_maximize;
    bool recompute_best = false;
    for (const MetricPoint& point : points) {
      run.step = std::max(run.step, point.step);
      {
        LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kInsertMetric));
        LORA_RETURN_IF_ERROR(stmt.Text(1, run_id)
                                 .Text(2, point.name)
                                 .Int(3, point.step)
                                 .Int(4, attempt)
                                 .Int(5, point.epoch)
                                 .Real(6, point.value)
                                 .Int(7, point.time_ms)
                                 .Text(8, sweep.sweep_id)
                                 .Int(9, sweep.last_sequence + 1)
                                 .Run());
      }
      if (db.Changes() == 0) {
        ++result.duplicates;
        continue;
      }
      ++result.stored;
      ++sweep.last_sequence;
      if (point.name != sweep.metric_name || recompute_best) continue;
      // A replayed step replaces an older attempt's point in the series,
      // and that point may have been the best: recompute from the series.
      LORA_ASSIGN_OR_RETURN(Stmt older, db.Prepare(kOlderAttemptPoint));
      LORA_ASSIGN_OR_RETURN(bool replaces, older.Text(1, run_id)
                                               .Text(2, point.name)
                                               .Int(3, point.step)
                                               .Int(4, attempt)
                                               .Step());
      if (replaces) {
        recompute_best = true;
      } else if (store_logic::IsBetterMetric(point.value, run.best_metric,
                                             maximize)) {
        run.best_metric = point.value;
        run.best_epoch = point.epoch;
      }
    }
    if (recompute_best) {
      LORA_ASSIGN_OR_RETURN(std::vector<MetricRecord> series,
                            Series(db, run_id, sweep.metric_name));
      store_logic::SetBestFromSeries(run, series, maximize);
    }
    LORA_RETURN_IF_ERROR(UpdateRun(db, run));
    LORA_RETURN_IF_ERROR(Rederive(db, sweep, now_ms));
    if (sweep.last_sequence != last_sequence) {
      LORA_RETURN_IF_ERROR(UpdateSweep(db, sweep));
    }
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<std::vector<MetricRecord>> SqliteRunStore::ReadMetricSeries(
    const std::string& run_id, const std::string& name) {
  std::vector<MetricRecord> series;
  LORA_RETURN_IF_ERROR(Transact(Mode::kRead, [&](Db& db) -> absl::Status {
    {
      LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kRunSweepId));
      LORA_ASSIGN_OR_RETURN(bool row, stmt.Text(1, run_id).Step());
      if (!row) {
        return absl::NotFoundError(absl::StrCat("run ", run_id, " not found"));
      }
    }
    LORA_ASSIGN_OR_RETURN(series, Series(db, run_id, name));
    return absl::OkStatus();
  }));
  return series;
}

absl::StatusOr<std::vector<EventRecord>> SqliteRunStore::ReadEvents(
    const std::string& sweep_id, int64_t after_sequence, int64_t limit,
    bool include_metrics) {
  LORA_RETURN_IF_ERROR(store_logic::CheckLimit(limit, "ReadEvents"));
  std::vector<EventRecord> events;
  LORA_RETURN_IF_ERROR(Transact(Mode::kRead, [&](Db& db) -> absl::Status {
    LORA_RETURN_IF_ERROR(LoadSweep(db, sweep_id).status());
    LORA_ASSIGN_OR_RETURN(
        Stmt stmt,
        db.Prepare(include_metrics ? kReadEventsWithMetrics : kReadEvents));
    stmt.Text(1, sweep_id).Int(2, after_sequence).Int(3, limit);
    while (true) {
      LORA_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) return absl::OkStatus();
      EventRecord event;
      event.sweep_id = sweep_id;
      event.sequence = stmt.ColInt(0);
      event.time_ms = stmt.ColInt(1);
      const int64_t kind = stmt.ColInt(2);
      event.run_id = stmt.ColText(3);
      event.attempt = stmt.ColInt(4);
      if (kind == kEventRunState) {
        event.kind = EventRecord::Kind::kRunState;
        LORA_ASSIGN_OR_RETURN(event.run_state, ToRunState(db, stmt.ColInt(5)));
        event.worker_id = stmt.ColText(6);
        event.error = stmt.ColText(7);
      } else if (kind == kEventSweepState) {
        event.kind = EventRecord::Kind::kSweepState;
        LORA_ASSIGN_OR_RETURN(event.sweep_state,
                              ToSweepState(db, stmt.ColInt(5)));
      } else if (kind == kEventMetric) {
        event.kind = EventRecord::Kind::kMetric;
        event.metric.name = stmt.ColText(8);
        event.metric.step = stmt.ColInt(9);
        event.metric.epoch = stmt.ColInt(10);
        event.metric.value = stmt.ColReal(11);
        event.metric.time_ms = event.time_ms;
      } else {
        return Corrupt(db, absl::StrCat("invalid event kind ", kind));
      }
      events.push_back(std::move(event));
    }
  }));
  return events;
}

absl::Status SqliteRunStore::UpsertWorker(const WorkerRecord& worker) {
  LORA_RETURN_IF_ERROR(store_logic::ValidateWorker(worker));
  return Transact(Mode::kWrite, [&](Db& db) -> absl::Status {
    LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kUpsertWorker));
    return stmt.Text(1, worker.worker_id)
        .Text(2, worker.name)
        .Blob(3, worker.capabilities)
        .Int(4, worker.register_ms)
        .Int(5, worker.last_heartbeat_ms)
        .Run();
  });
}

absl::StatusOr<std::vector<WorkerRecord>> SqliteRunStore::ListWorkers() {
  std::vector<WorkerRecord> workers;
  LORA_RETURN_IF_ERROR(Transact(Mode::kRead, [&](Db& db) -> absl::Status {
    LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kListWorkers));
    while (true) {
      LORA_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) return absl::OkStatus();
      WorkerRecord worker;
      worker.worker_id = stmt.ColText(0);
      worker.name = stmt.ColText(1);
      worker.capabilities = stmt.ColBlob(2);
      worker.register_ms = stmt.ColInt(3);
      worker.last_heartbeat_ms = stmt.ColInt(4);
      workers.push_back(std::move(worker));
    }
  }));
  return workers;
}

absl::StatusOr<bool> SqliteRunStore::PutArtifact(
    const ArtifactRecord& artifact) {
  ArtifactRecord record = artifact;
  LORA_RETURN_IF_ERROR(store_logic::ValidateArtifact(record));
  bool inserted = false;
  LORA_RETURN_IF_ERROR(Transact(Mode::kWrite, [&](Db& db) -> absl::Status {
    {
      LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kInsertArtifact));
      LORA_RETURN_IF_ERROR(stmt.Text(1, record.artifact_id)
                               .Int(2, record.kind)
                               .Text(3, record.name)
                               .Int(4, record.size_bytes)
                               .Text(5, record.run_id)
                               .Int(6, record.create_ms)
                               .Run());
    }
    inserted = db.Changes() > 0;
    if (!inserted) return absl::OkStatus();
    for (const ArtifactFileRecord& file : record.files) {
      LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kInsertArtifactFile));
      LORA_RETURN_IF_ERROR(stmt.Text(1, record.artifact_id)
                               .Text(2, file.path)
                               .Int(3, file.size_bytes)
                               .Text(4, file.sha256)
                               .Run());
    }
    return absl::OkStatus();
  }));
  return inserted;
}

absl::StatusOr<ArtifactRecord> SqliteRunStore::GetArtifact(
    const std::string& artifact_id) {
  ArtifactRecord artifact;
  LORA_RETURN_IF_ERROR(Transact(Mode::kRead, [&](Db& db) -> absl::Status {
    {
      LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kSelectArtifact));
      stmt.Text(1, artifact_id);
      LORA_ASSIGN_OR_RETURN(std::vector<ArtifactRecord> found,
                            ReadArtifacts(db, stmt));
      if (found.empty()) {
        return absl::NotFoundError(
            absl::StrCat("artifact ", artifact_id, " not found"));
      }
      artifact = std::move(found.front());
    }
    LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kArtifactFiles));
    stmt.Text(1, artifact_id);
    while (true) {
      LORA_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) return absl::OkStatus();
      artifact.files.push_back(
          {stmt.ColText(0), stmt.ColInt(1), stmt.ColText(2)});
    }
  }));
  return artifact;
}

absl::StatusOr<std::vector<ArtifactRecord>> SqliteRunStore::ListArtifacts(
    int64_t kind, const std::string& run_id,
    const std::string& after_artifact_id, int64_t limit) {
  LORA_RETURN_IF_ERROR(store_logic::CheckLimit(limit, "ListArtifacts"));
  std::vector<ArtifactRecord> artifacts;
  LORA_RETURN_IF_ERROR(Transact(Mode::kRead, [&](Db& db) -> absl::Status {
    std::optional<ArtifactRecord> after;
    if (!after_artifact_id.empty()) {
      LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kSelectArtifact));
      stmt.Text(1, after_artifact_id);
      LORA_ASSIGN_OR_RETURN(std::vector<ArtifactRecord> found,
                            ReadArtifacts(db, stmt));
      if (found.empty()) {
        return absl::NotFoundError(
            absl::StrCat("artifact ", after_artifact_id, " not found"));
      }
      after = std::move(found.front());
    }
    LORA_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(after ? kListArtifactsAfter
                                                      : kListArtifactsFirst));
    stmt.Int(1, limit).Int(2, kind).Text(3, run_id);
    if (after) stmt.Int(4, after->create_ms).Text(5, after->artifact_id);
    LORA_ASSIGN_OR_RETURN(artifacts, ReadArtifacts(db, stmt));
    return absl::OkStatus();
  }));
  return artifacts;
}

}  // namespace lora::coordinator
