// What only the SQLite run store promises: data survives reopening, the
// schema is versioned and migrated, files it must not use are refused and
// left byte for byte as they were, and a writer killed with SIGKILL at any
// moment loses no acknowledged metric batch and leaves no half-written one.
#include "coordinator/sqlite_run_store.h"

#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "coordinator/run_state.h"
#include "coordinator/run_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/coordinator/store_test_util.h"

namespace lora::coordinator {
namespace {

using ::lora::coordinator::test::ByWorker;
using ::lora::coordinator::test::Coordinator;
using ::lora::coordinator::test::FreshDir;
using ::lora::coordinator::test::Lease;
using ::lora::coordinator::test::MakeRuns;
using ::lora::coordinator::test::MakeSweep;
using ::lora::coordinator::test::Point;
using ::lora::coordinator::test::RunId;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using Kind = RunTransition::Kind;

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Direct access to the database file, behind the store's back.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(
        sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr),
        SQLITE_OK);
  }
  ~RawDb() { sqlite3_close(db_); }

  void Exec(const std::string& sql) {
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error),
              SQLITE_OK)
        << sql << ": " << (error ? error : "");
    sqlite3_free(error);
  }

  // Every row of a query, its columns joined by '|'.
  std::vector<std::string> Rows(const std::string& sql) {
    std::vector<std::string> rows;
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr),
              SQLITE_OK)
        << sql << ": " << sqlite3_errmsg(db_);
    while (stmt != nullptr && sqlite3_step(stmt) == SQLITE_ROW) {
      std::string row;
      for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
        const unsigned char* text = sqlite3_column_text(stmt, i);
        absl::StrAppend(&row, i ? "|" : "",
                        text ? reinterpret_cast<const char*>(text) : "NULL");
      }
      rows.push_back(row);
    }
    sqlite3_finalize(stmt);
    return rows;
  }

 private:
  sqlite3* db_ = nullptr;
};

std::unique_ptr<SqliteRunStore> OpenOrDie(const std::string& path) {
  absl::StatusOr<std::unique_ptr<SqliteRunStore>> store =
      SqliteRunStore::Open(path);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

class SqliteRunStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir(
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    path_ = dir_ + "/runs.db";
  }

  std::string dir_;
  std::string path_;
};

TEST_F(SqliteRunStoreTest, FreshFileGetsTheCurrentSchemaInWalMode) {
  ASSERT_NE(OpenOrDie(path_), nullptr);
  RawDb raw(path_);
  EXPECT_THAT(raw.Rows("SELECT version FROM schema_version"),
              ElementsAre(absl::StrCat(SqliteRunStore::kSchemaVersion)));
  EXPECT_THAT(raw.Rows("PRAGMA journal_mode"), ElementsAre("wal"));
  EXPECT_THAT(raw.Rows("SELECT name FROM sqlite_master WHERE type = 'table'"),
              IsSupersetOf({"schema_version", "sweeps", "runs", "attempts",
                            "metric_points", "events", "workers", "artifacts",
                            "artifact_files"}));
}

TEST_F(SqliteRunStoreTest, ReopeningKeepsEverything) {
  {
    std::unique_ptr<SqliteRunStore> store = OpenOrDie(path_);
    ASSERT_NE(store, nullptr);
    ASSERT_OK(
        store->CreateSweep(MakeSweep("s1", 1000), MakeRuns("s1", 2)).status());
    ASSERT_OK(store->TransitionRun(RunId("s1", 0), Lease("w1", 2000, 90000))
                  .status());
    ASSERT_OK(store
                  ->AppendMetrics(RunId("s1", 0), 1,
                                  {Point("val_accuracy", 10, 1, 0.75),
                                   Point("loss", 10, 1, 0.5)},
                                  2500)
                  .status());
    ASSERT_OK(store->UpsertWorker({"w1", "box", "\x01\x02", 10, 20}));
    ArtifactRecord artifact;
    artifact.artifact_id = "sha256:x";
    artifact.kind = 2;
    artifact.files = {{"adapter.safetensors", 7, "ab"}};
    artifact.create_ms = 3000;
    ASSERT_OK(store->PutArtifact(artifact).status());
    ASSERT_OK(
        store->CreateSweep(MakeSweep("s2", 500), MakeRuns("s2", 1)).status());
    ASSERT_OK(store->CancelSweep("s2", 4000).status());
  }
  std::unique_ptr<SqliteRunStore> store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(SweepRecord s1, store->GetSweep("s1"));
  EXPECT_EQ(s1.state, SweepState::kRunning);
  EXPECT_EQ(s1.counts.running, 1);
  EXPECT_EQ(s1.counts.pending, 1);
  EXPECT_EQ(s1.last_sequence, 5);  // LEASED, sweep RUNNING, RUNNING, 2 points
  ASSERT_OK_AND_ASSIGN(RunRecord run, store->GetRun(RunId("s1", 0)));
  EXPECT_EQ(run.lifecycle.state, RunState::kRunning);
  EXPECT_EQ(run.lifecycle.worker_id, "w1");
  EXPECT_EQ(run.lifecycle.lease_expire_ms, 90000);
  EXPECT_EQ(run.best_metric, 0.75);
  EXPECT_EQ(run.best_epoch, 1);
  EXPECT_EQ(run.step, 10);
  EXPECT_EQ(run.worker_labels.at("zone"), "eu");
  ASSERT_OK_AND_ASSIGN(std::vector<MetricRecord> series,
                       store->ReadMetricSeries(RunId("s1", 0), ""));
  EXPECT_EQ(series.size(), 2u);
  ASSERT_OK_AND_ASSIGN(std::vector<WorkerRecord> workers, store->ListWorkers());
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0].capabilities, "\x01\x02");
  ASSERT_OK_AND_ASSIGN(ArtifactRecord artifact, store->GetArtifact("sha256:x"));
  ASSERT_EQ(artifact.files.size(), 1u);
  EXPECT_EQ(artifact.files[0].path, "adapter.safetensors");
  ASSERT_OK_AND_ASSIGN(SweepRecord s2, store->GetSweep("s2"));
  EXPECT_TRUE(s2.cancelled);
  EXPECT_EQ(s2.state, SweepState::kCancelled);

  // The event sequence continues where it stopped.
  ASSERT_OK(store
                ->TransitionRun(RunId("s1", 0),
                                ByWorker(Kind::kSucceed, "w1", 1, 5000))
                .status());
  ASSERT_OK_AND_ASSIGN(std::vector<EventRecord> events,
                       store->ReadEvents("s1", 5, 10, true));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].sequence, 6);
  EXPECT_EQ(events[0].run_state, RunState::kSucceeded);
}

TEST_F(SqliteRunStoreTest, EveryLeasedAttemptHasARow) {
  std::unique_ptr<SqliteRunStore> store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  ASSERT_OK(
      store->CreateSweep(MakeSweep("s1", 1000), MakeRuns("s1", 1)).status());
  const std::string r = RunId("s1", 0);
  ASSERT_OK(store->TransitionRun(r, Lease("w1", 2000, 3000)).status());
  ASSERT_OK(
      store->TransitionRun(r, Coordinator(Kind::kExpireLease, 3000)).status());
  ASSERT_OK(store->TransitionRun(r, Lease("w2", 4000, 9000)).status());
  RunTransition fail = ByWorker(Kind::kFail, "w2", 2, 5000);
  fail.error = "OOM";
  ASSERT_OK(store->TransitionRun(r, fail).status());
  ASSERT_OK(store->TransitionRun(r, Lease("w3", 6000, 9000)).status());
  ASSERT_OK(store->TransitionRun(r, ByWorker(Kind::kSucceed, "w3", 3, 7000))
                .status());
  store.reset();
  RawDb raw(path_);
  EXPECT_THAT(
      raw.Rows("SELECT attempt, worker_id, start_ms, end_ms, outcome, error "
               "FROM attempts WHERE run_id = 's1-r0' ORDER BY attempt"),
      ElementsAre("1|w1|2000|3000|LEASE_EXPIRED|lease of worker w1 expired "
                  "at attempt 1",
                  "2|w2|4000|5000|FAILED|OOM", "3|w3|6000|7000|SUCCEEDED|"));
}

TEST_F(SqliteRunStoreTest, NewerSchemaIsRefusedAndTheFileLeftAsItWas) {
  ASSERT_NE(OpenOrDie(path_), nullptr);
  const int64_t newer = SqliteRunStore::kSchemaVersion + 1;
  {
    RawDb raw(path_);
    raw.Exec(absl::StrCat("UPDATE schema_version SET version = ", newer));
    raw.Exec("CREATE TABLE from_the_future (x INTEGER)");
  }
  const std::string bytes = ReadBytes(path_);
  ASSERT_FALSE(bytes.empty());

  absl::StatusOr<std::unique_ptr<SqliteRunStore>> store =
      SqliteRunStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      store.status().message(),
      AllOf(HasSubstr(path_), HasSubstr(absl::StrCat("schema version ", newer)),
            HasSubstr(absl::StrCat("(", SqliteRunStore::kSchemaVersion, ")"))));
  EXPECT_EQ(ReadBytes(path_), bytes);
}

TEST_F(SqliteRunStoreTest, FileThatIsNotADatabaseIsRefusedAndLeftAsItWas) {
  std::string garbage;
  for (int i = 0; i < 200; ++i) {
    absl::StrAppend(&garbage, "this is a text file, line ", i, "\n");
  }
  WriteBytes(path_, garbage);
  absl::StatusOr<std::unique_ptr<SqliteRunStore>> store =
      SqliteRunStore::Open(path_);
  EXPECT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(),
              AllOf(HasSubstr(path_), HasSubstr("not a database")));
  EXPECT_EQ(ReadBytes(path_), garbage);
  EXPECT_FALSE(std::filesystem::exists(path_ + "-wal"));
}

TEST_F(SqliteRunStoreTest, AnotherProgramsDatabaseIsRefusedAndLeftAsItWas) {
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE photos (id INTEGER PRIMARY KEY, "
                           "name TEXT); INSERT INTO photos (name) "
                           "VALUES ('cat.jpg')",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  const std::string bytes = ReadBytes(path_);
  absl::StatusOr<std::unique_ptr<SqliteRunStore>> store =
      SqliteRunStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(),
              AllOf(HasSubstr(path_), HasSubstr("not a lora-sweep run store")));
  EXPECT_EQ(ReadBytes(path_), bytes);
}

TEST_F(SqliteRunStoreTest, UnopenablePathIsAnErrorNamingIt) {
  const std::string path = dir_ + "/missing-folder/runs.db";
  absl::StatusOr<std::unique_ptr<SqliteRunStore>> store =
      SqliteRunStore::Open(path);
  EXPECT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr(path));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/missing-folder"));
  EXPECT_EQ(SqliteRunStore::Open("").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// The crash test.

std::string ChildBinary() {
  return absl::StrCat(std::getenv("TEST_SRCDIR"), "/",
                      std::getenv("TEST_WORKSPACE"),
                      "/tests/coordinator/store_crash_child");
}

// Reads lines from a pipe, giving up after a timeout.
class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}

  // The next line without '\n'; nullopt at end of file or after
  // `timeout_ms` without one.
  std::optional<std::string> Next(int timeout_ms = 30000) {
    while (true) {
      const size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      pollfd pfd{fd_, POLLIN, 0};
      const int ready = poll(&pfd, 1, timeout_ms);
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return std::nullopt;
      char chunk[4096];
      const ssize_t n = read(fd_, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  int fd_;
  std::string buffer_;
};

struct Child {
  pid_t pid = -1;
  int stdout_fd = -1;
};

Child Spawn(const std::vector<std::string>& args) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  std::vector<char*> argv;
  for (const std::string& arg : args)
    argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  return {pid, fds[0]};
}

TEST_F(SqliteRunStoreTest, KilledWriterLosesNoAcknowledgedBatch) {
  constexpr int64_t kPoints = 40;
  const std::string run_id = RunId("s1", 0);
  {
    std::unique_ptr<SqliteRunStore> store = OpenOrDie(path_);
    ASSERT_NE(store, nullptr);
    ASSERT_OK(
        store->CreateSweep(MakeSweep("s1", 1000), MakeRuns("s1", 1)).status());
    ASSERT_OK(
        store->TransitionRun(run_id, Lease("w1", 2000, 1 << 30)).status());
  }
  // (acks to wait for, then microseconds before SIGKILL): from right after
  // an ack to well into the following transactions.
  const std::pair<int, int> rounds[] = {{1, 0},    {3, 150},  {2, 700},
                                        {5, 30},   {4, 2500}, {1, 400},
                                        {6, 1200}, {2, 90}};
  int64_t next_batch = 0;
  int64_t total_acked = 0;
  for (const auto& [acks_before_kill, delay_us] : rounds) {
    SCOPED_TRACE(absl::StrCat("round starting at batch ", next_batch,
                              ", kill after ", acks_before_kill, " acks + ",
                              delay_us, " us"));
    Child child = Spawn({ChildBinary(), path_, run_id, "1",
                         absl::StrCat(next_batch), absl::StrCat(kPoints)});
    ASSERT_GT(child.pid, 0);
    LineReader reader(child.stdout_fd);
    std::set<int64_t> acked;
    auto record = [&](const std::string& line) {
      std::vector<std::string> parts = absl::StrSplit(line, ' ');
      int64_t batch = -1;
      ASSERT_EQ(parts.size(), 2u) << line;
      ASSERT_EQ(parts[0], "acked") << line;
      ASSERT_TRUE(absl::SimpleAtoi(parts[1], &batch)) << line;
      acked.insert(batch);
    };
    for (int i = 0; i < acks_before_kill; ++i) {
      std::optional<std::string> line = reader.Next();
      if (!line.has_value()) {
        kill(child.pid, SIGKILL);
        waitpid(child.pid, nullptr, 0);
        close(child.stdout_fd);
        FAIL() << "the child stopped acknowledging";
      }
      record(*line);
    }
    if (delay_us > 0) usleep(delay_us);
    ASSERT_EQ(kill(child.pid, SIGKILL), 0);
    // Acks already in the pipe were printed after their commit: they count.
    while (std::optional<std::string> line = reader.Next()) record(*line);
    int status = 0;
    ASSERT_EQ(waitpid(child.pid, &status, 0), child.pid);
    close(child.stdout_fd);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "child exit status " << status;
    total_acked += static_cast<int64_t>(acked.size());

    std::unique_ptr<SqliteRunStore> store = OpenOrDie(path_);
    ASSERT_NE(store, nullptr);
    ASSERT_OK_AND_ASSIGN(std::vector<MetricRecord> series,
                         store->ReadMetricSeries(run_id, "loss"));
    std::map<int64_t, int64_t> points_of_batch;
    int64_t max_step = 0;
    for (const MetricRecord& record : series) {
      ++points_of_batch[(record.point.step - 1) / kPoints];
      max_step = std::max(max_step, record.point.step);
      ASSERT_EQ(record.point.value, 1.0 / record.point.step);
    }
    // Batches 0 ... last are complete, nothing after: no batch half-written.
    int64_t expected_batch = 0;
    for (const auto& [batch, points] : points_of_batch) {
      EXPECT_EQ(batch, expected_batch++);
      EXPECT_EQ(points, kPoints) << "batch " << batch << " is half-written";
    }
    for (int64_t batch : acked) {
      EXPECT_EQ(points_of_batch.count(batch), 1u)
          << "acknowledged batch " << batch << " was lost";
    }
    const int64_t stored = static_cast<int64_t>(series.size());

    ASSERT_OK_AND_ASSIGN(SweepRecord sweep, store->GetSweep("s1"));
    ASSERT_OK_AND_ASSIGN(std::vector<EventRecord> events,
                         store->ReadEvents("s1", 0, 1000000, true));
    // LEASED, sweep RUNNING, RUNNING, then one event per stored point.
    EXPECT_EQ(sweep.last_sequence, 3 + stored);
    ASSERT_EQ(static_cast<int64_t>(events.size()), sweep.last_sequence);
    for (size_t i = 0; i < events.size(); ++i) {
      ASSERT_EQ(events[i].sequence, static_cast<int64_t>(i + 1));
    }
    EXPECT_EQ(sweep.counts.running, 1);
    EXPECT_EQ(sweep.counts.total(), 1);
    ASSERT_OK_AND_ASSIGN(RunRecord run, store->GetRun(run_id));
    EXPECT_EQ(run.lifecycle.state, RunState::kRunning);
    EXPECT_EQ(run.step, max_step);
    next_batch =
        points_of_batch.empty() ? 0 : points_of_batch.rbegin()->first + 1;
  }
  int64_t awaited = 0;
  for (const auto& [acks_before_kill, delay_us] : rounds) {
    awaited += acks_before_kill;
  }
  EXPECT_GE(total_acked, awaited);
}

}  // namespace
}  // namespace lora::coordinator
