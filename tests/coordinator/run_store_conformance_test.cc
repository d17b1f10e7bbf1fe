// The RunStore contract (coordinator/run_store.h), run against every
// implementation: MemoryRunStore and SqliteRunStore (on a real file in a
// fresh folder per test).
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "coordinator/memory_run_store.h"
#include "coordinator/run_state.h"
#include "coordinator/run_store.h"
#include "coordinator/sqlite_run_store.h"
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
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Kind = RunTransition::Kind;
using EventKind = EventRecord::Kind;

struct StoreFactory {
  std::string name;
  // Opens the store kept in `dir`: a new one in an empty folder.
  std::function<absl::StatusOr<std::unique_ptr<RunStore>>(const std::string&)>
      open;
  // Whether a second open() of the same folder shares the first's data.
  bool shared_across_opens = false;
};

void PrintTo(const StoreFactory& factory, std::ostream* os) {
  *os << factory.name;
}

StoreFactory MemoryFactory() {
  return {"Memory",
          [](const std::string&) -> absl::StatusOr<std::unique_ptr<RunStore>> {
            return std::make_unique<MemoryRunStore>();
          },
          false};
}

StoreFactory SqliteFactory() {
  return {
      "Sqlite",
      [](const std::string& dir) -> absl::StatusOr<std::unique_ptr<RunStore>> {
        absl::StatusOr<std::unique_ptr<SqliteRunStore>> store =
            SqliteRunStore::Open(dir + "/runs.db");
        if (!store.ok()) return store.status();
        return std::unique_ptr<RunStore>(*std::move(store));
      },
      true};
}

// A compact view of an event, for exact comparisons.
std::string Describe(const EventRecord& e) {
  switch (e.kind) {
    case EventKind::kRunState:
      return absl::StrCat(e.sequence, " run ", e.run_id, " ",
                          RunStateName(e.run_state), " a", e.attempt, " ",
                          e.worker_id, e.error.empty() ? "" : " err=", e.error);
    case EventKind::kMetric:
      return absl::StrCat(e.sequence, " metric ", e.run_id, " a", e.attempt,
                          " ", e.metric.name, "@", e.metric.step);
    case EventKind::kSweepState:
      return absl::StrCat(e.sequence, " sweep ", SweepStateName(e.sweep_state));
  }
  return "?";
}

class RunStoreConformanceTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = FreshDir(absl::StrCat(GetParam().name, "_", info->name()));
    absl::StatusOr<std::unique_ptr<RunStore>> store = GetParam().open(dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  RunStore& store() { return *store_; }

  void Create(const std::string& sweep_id, int64_t runs,
              int64_t create_ms = 1000, int64_t max_attempts = 3,
              const std::string& metric = "val_accuracy",
              bool maximize = true) {
    absl::StatusOr<CreateSweepResult> result = store().CreateSweep(
        MakeSweep(sweep_id, create_ms, max_attempts, metric, maximize),
        MakeRuns(sweep_id, runs));
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_FALSE(result->already_existed);
  }

  // Applies `t` and expects it to succeed.
  RunRecord Apply(const std::string& run_id, const RunTransition& t) {
    absl::StatusOr<RunRecord> run = store().TransitionRun(run_id, t);
    EXPECT_TRUE(run.ok()) << TransitionName(t.kind) << " " << run_id << ": "
                          << run.status();
    return run.ok() ? *run : RunRecord();
  }

  // Leases the run to `worker` (lease until t=100000) and starts it.
  void LeaseAndStart(const std::string& run_id, const std::string& worker,
                     int64_t attempt = 1, int64_t now_ms = 2000) {
    Apply(run_id, Lease(worker, now_ms, 100000));
    Apply(run_id, ByWorker(Kind::kStart, worker, attempt, now_ms + 1));
  }

  SweepRecord Sweep(const std::string& sweep_id) {
    absl::StatusOr<SweepRecord> sweep = store().GetSweep(sweep_id);
    EXPECT_TRUE(sweep.ok()) << sweep.status();
    return sweep.ok() ? *sweep : SweepRecord();
  }

  RunRecord Run(const std::string& run_id) {
    absl::StatusOr<RunRecord> run = store().GetRun(run_id);
    EXPECT_TRUE(run.ok()) << run.status();
    return run.ok() ? *run : RunRecord();
  }

  std::vector<EventRecord> Events(const std::string& sweep_id,
                                  bool include_metrics = true,
                                  int64_t after = 0) {
    absl::StatusOr<std::vector<EventRecord>> events =
        store().ReadEvents(sweep_id, after, 1000000, include_metrics);
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? *events : std::vector<EventRecord>();
  }

  std::vector<std::string> Described(const std::string& sweep_id,
                                     bool include_metrics = true,
                                     int64_t after = 0) {
    std::vector<std::string> out;
    for (const EventRecord& e : Events(sweep_id, include_metrics, after)) {
      out.push_back(Describe(e));
    }
    return out;
  }

  std::vector<MetricRecord> Series(const std::string& run_id,
                                   const std::string& name) {
    absl::StatusOr<std::vector<MetricRecord>> series =
        store().ReadMetricSeries(run_id, name);
    EXPECT_TRUE(series.ok()) << series.status();
    return series.ok() ? *series : std::vector<MetricRecord>();
  }

  AppendMetricsResult Append(const std::string& run_id, int64_t attempt,
                             const std::vector<MetricPoint>& points,
                             int64_t now_ms = 5000) {
    absl::StatusOr<AppendMetricsResult> result =
        store().AppendMetrics(run_id, attempt, points, now_ms);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : AppendMetricsResult();
  }

  // The invariants every sweep keeps: events numbered 1..last_sequence with
  // no gap, counts equal to the runs' states, state derived from them.
  void ExpectConsistent(const std::string& sweep_id) {
    SCOPED_TRACE(sweep_id);
    const SweepRecord sweep = Sweep(sweep_id);
    const std::vector<EventRecord> events = Events(sweep_id);
    ASSERT_EQ(static_cast<int64_t>(events.size()), sweep.last_sequence);
    for (size_t i = 0; i < events.size(); ++i) {
      ASSERT_EQ(events[i].sequence, static_cast<int64_t>(i + 1));
      ASSERT_EQ(events[i].sweep_id, sweep_id);
    }
    RunFilter filter;
    filter.sweep_id = sweep_id;
    absl::StatusOr<std::vector<RunRecord>> runs = store().ListRuns(filter);
    ASSERT_TRUE(runs.ok()) << runs.status();
    RunCounts counts;
    for (const RunRecord& run : *runs) counts.Add(run.lifecycle.state);
    EXPECT_EQ(sweep.counts.pending, counts.pending);
    EXPECT_EQ(sweep.counts.leased, counts.leased);
    EXPECT_EQ(sweep.counts.running, counts.running);
    EXPECT_EQ(sweep.counts.succeeded, counts.succeeded);
    EXPECT_EQ(sweep.counts.failed, counts.failed);
    EXPECT_EQ(sweep.counts.cancelled, counts.cancelled);
    EXPECT_EQ(sweep.state, DeriveSweepState(counts, sweep.cancelled));
  }

  std::string dir_;
  std::unique_ptr<RunStore> store_;
};

std::vector<std::string> Ids(const std::vector<SweepRecord>& sweeps) {
  std::vector<std::string> ids;
  for (const SweepRecord& s : sweeps) ids.push_back(s.sweep_id);
  return ids;
}

std::vector<std::string> Ids(const std::vector<RunRecord>& runs) {
  std::vector<std::string> ids;
  for (const RunRecord& r : runs) ids.push_back(r.run_id);
  return ids;
}

std::vector<std::string> Ids(const std::vector<ArtifactRecord>& artifacts) {
  std::vector<std::string> ids;
  for (const ArtifactRecord& a : artifacts) ids.push_back(a.artifact_id);
  return ids;
}

TEST_P(RunStoreConformanceTest, CreateSweepStoresTheSweepAndPendingRuns) {
  SweepRecord sweep = MakeSweep("s1", 1000, /*max_attempts=*/4);
  // Derived fields are the store's to set, whatever the caller passes.
  sweep.state = SweepState::kFailed;
  sweep.cancelled = true;
  sweep.counts.failed = 7;
  sweep.end_ms = 5;
  sweep.last_sequence = 9;
  std::vector<RunRecord> runs = MakeRuns("s1", 3);
  runs[1].lifecycle.state = RunState::kRunning;
  runs[1].lifecycle.attempt = 5;
  runs[1].step = 50;
  runs[1].best_metric = 0.5;
  runs[2].create_ms = 1234;
  runs[2].sweep_id = "other";
  ASSERT_OK_AND_ASSIGN(CreateSweepResult result,
                       store().CreateSweep(sweep, runs));
  EXPECT_FALSE(result.already_existed);
  EXPECT_EQ(result.sweep.state, SweepState::kPending);
  EXPECT_EQ(result.sweep.counts.pending, 3);
  EXPECT_EQ(result.sweep.counts.total(), 3);

  const SweepRecord got = Sweep("s1");
  EXPECT_EQ(got.name, "s1-name");
  EXPECT_EQ(got.spec_yaml, "name: x\nmethod: grid\n");
  EXPECT_EQ(got.source_name, "sweep.yaml");
  EXPECT_EQ(got.metric_name, "val_accuracy");
  EXPECT_TRUE(got.metric_maximize);
  EXPECT_EQ(got.priority, 5);
  EXPECT_EQ(got.max_attempts, 4);
  EXPECT_FALSE(got.cancelled);
  EXPECT_EQ(got.state, SweepState::kPending);
  EXPECT_EQ(got.counts.pending, 3);
  EXPECT_EQ(got.counts.total(), 3);
  EXPECT_EQ(got.create_ms, 1000);
  EXPECT_EQ(got.end_ms, 0);
  EXPECT_EQ(got.last_sequence, 0);

  for (int i = 0; i < 3; ++i) {
    const RunRecord run = Run(RunId("s1", i));
    EXPECT_EQ(run.sweep_id, "s1");
    EXPECT_EQ(run.index, i);
    EXPECT_EQ(run.config_yaml, runs[i].config_yaml);
    EXPECT_EQ(run.config_hash, runs[i].config_hash);
    EXPECT_EQ(run.parameters_json, runs[i].parameters_json);
    EXPECT_EQ(run.device, "cuda");
    EXPECT_EQ(run.gpus, 1);
    EXPECT_EQ(run.cpu_threads, 4);
    EXPECT_EQ(run.worker_labels, runs[i].worker_labels);
    EXPECT_EQ(run.counts.total, 125000000 + i);
    EXPECT_EQ(run.counts.trainable, 1000 + i);
    EXPECT_EQ(run.counts.lora, 600 + i);
    EXPECT_EQ(run.counts.head, 400);
    EXPECT_EQ(run.counts.base, 124999000);
    EXPECT_EQ(run.lifecycle.state, RunState::kPending);
    EXPECT_EQ(run.lifecycle.attempt, 1);
    EXPECT_EQ(run.lifecycle.max_attempts, 4);
    EXPECT_EQ(run.lifecycle.worker_id, "");
    EXPECT_EQ(run.lifecycle.start_ms, 0);
    EXPECT_EQ(run.create_ms, i == 2 ? 1234 : 1000);
    EXPECT_EQ(run.step, 0);
    EXPECT_FALSE(run.best_metric.has_value());
  }
  EXPECT_THAT(Events("s1"), IsEmpty());
}

TEST_P(RunStoreConformanceTest, CreatingAnExistingSweepChangesNothing) {
  Create("s1", 3);
  Apply(RunId("s1", 0), Lease("w1", 2000, 9000));
  const SweepRecord before = Sweep("s1");

  SweepRecord again = MakeSweep("s1", 7777, 9);
  again.name = "renamed";
  ASSERT_OK_AND_ASSIGN(CreateSweepResult result,
                       store().CreateSweep(again, MakeRuns("s1", 5)));
  EXPECT_TRUE(result.already_existed);
  EXPECT_EQ(result.sweep.name, "s1-name");
  EXPECT_EQ(result.sweep.counts.leased, 1);
  EXPECT_EQ(result.sweep.last_sequence, before.last_sequence);

  const SweepRecord after = Sweep("s1");
  EXPECT_EQ(after.name, "s1-name");
  EXPECT_EQ(after.create_ms, 1000);
  EXPECT_EQ(after.max_attempts, 3);
  EXPECT_EQ(after.counts.pending, 2);
  EXPECT_EQ(after.counts.leased, 1);
  EXPECT_EQ(after.last_sequence, before.last_sequence);
  RunFilter filter;
  filter.sweep_id = "s1";
  ASSERT_OK_AND_ASSIGN(std::vector<RunRecord> runs, store().ListRuns(filter));
  EXPECT_EQ(runs.size(), 3u);
  EXPECT_EQ(Run(RunId("s1", 0)).lifecycle.state, RunState::kLeased);
  EXPECT_EQ(store().GetRun(RunId("s1", 4)).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(RunStoreConformanceTest,
       CreateSweepRejectsInvalidInputAndStoresNothing) {
  auto code = [&](const SweepRecord& sweep,
                  const std::vector<RunRecord>& runs) {
    return store().CreateSweep(sweep, runs).status().code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code(MakeSweep("", 1000), MakeRuns("x", 1)), kInvalid);
  EXPECT_EQ(code(MakeSweep("bad", 1000), {}), kInvalid);
  EXPECT_EQ(
      code(MakeSweep("bad", 1000, /*max_attempts=*/0), MakeRuns("bad", 1)),
      kInvalid);
  std::vector<RunRecord> runs = MakeRuns("bad", 2);
  runs[1].run_id = runs[0].run_id;
  EXPECT_EQ(code(MakeSweep("bad", 1000), runs), kInvalid);
  runs = MakeRuns("bad", 2);
  runs[1].index = 0;
  EXPECT_EQ(code(MakeSweep("bad", 1000), runs), kInvalid);
  runs = MakeRuns("bad", 2);
  runs[0].run_id = "";
  EXPECT_EQ(code(MakeSweep("bad", 1000), runs), kInvalid);
  EXPECT_EQ(store().GetSweep("bad").status().code(),
            absl::StatusCode::kNotFound);

  // A run id that another sweep holds.
  Create("s1", 2);
  runs = MakeRuns("s2", 3);
  runs[2].run_id = RunId("s1", 1);
  absl::Status taken =
      store().CreateSweep(MakeSweep("s2", 2000), runs).status();
  EXPECT_EQ(taken.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(taken.message(), HasSubstr(RunId("s1", 1)));
  EXPECT_EQ(store().GetSweep("s2").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store().GetRun(RunId("s2", 0)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Run(RunId("s1", 1)).sweep_id, "s1");
}

TEST_P(RunStoreConformanceTest, UnknownIdsAreNotFoundAndBadLimitsInvalid) {
  Create("s1", 1);
  const auto kNotFound = absl::StatusCode::kNotFound;
  EXPECT_EQ(store().GetSweep("nope").status().code(), kNotFound);
  EXPECT_EQ(store().GetRun("nope").status().code(), kNotFound);
  EXPECT_EQ(store().TransitionRun("nope", Lease("w", 1, 2)).status().code(),
            kNotFound);
  EXPECT_EQ(store().CancelSweep("nope", 1).status().code(), kNotFound);
  EXPECT_EQ(store().RequeueFailedRuns("nope", 1).status().code(), kNotFound);
  EXPECT_EQ(store().AppendMetrics("nope", 1, {}, 1).status().code(), kNotFound);
  EXPECT_EQ(store().ReadMetricSeries("nope", "").status().code(), kNotFound);
  EXPECT_EQ(store().ReadEvents("nope", 0, 10, true).status().code(), kNotFound);
  EXPECT_EQ(store().GetArtifact("nope").status().code(), kNotFound);
  EXPECT_EQ(store().ListSweeps("nope", 10).status().code(), kNotFound);
  EXPECT_EQ(store().ListArtifacts(0, "", "nope", 10).status().code(),
            kNotFound);
  RunFilter filter;
  filter.after_run_id = "nope";
  EXPECT_EQ(store().ListRuns(filter).status().code(), kNotFound);
  filter.after_run_id = "";
  filter.sweep_id = "nope";
  EXPECT_EQ(store().ListRuns(filter).status().code(), kNotFound);

  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(store().ListSweeps("", 0).status().code(), kInvalid);
  filter = RunFilter();
  filter.limit = 0;
  EXPECT_EQ(store().ListRuns(filter).status().code(), kInvalid);
  EXPECT_EQ(store().ReadEvents("s1", 0, 0, true).status().code(), kInvalid);
  EXPECT_EQ(store().ListArtifacts(0, "", "", -1).status().code(), kInvalid);
}

TEST_P(RunStoreConformanceTest, ListSweepsPagesNewestFirst) {
  // Same create time for b and d: the id breaks the tie (descending).
  Create("a", 1, 1000);
  Create("b", 1, 3000);
  Create("c", 1, 2000);
  Create("d", 1, 3000);
  Create("e", 1, 500);
  ASSERT_OK_AND_ASSIGN(std::vector<SweepRecord> all,
                       store().ListSweeps("", 10));
  EXPECT_THAT(Ids(all), ElementsAre("d", "b", "c", "a", "e"));
  EXPECT_EQ(all[0].counts.pending, 1);

  std::vector<std::string> paged;
  std::string after;
  int pages = 0;
  while (true) {
    ASSERT_OK_AND_ASSIGN(std::vector<SweepRecord> page,
                         store().ListSweeps(after, 2));
    if (page.empty()) break;
    ++pages;
    EXPECT_LE(page.size(), 2u);
    for (const SweepRecord& s : page) paged.push_back(s.sweep_id);
    after = page.back().sweep_id;
  }
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(paged, ElementsAre("d", "b", "c", "a", "e"));
}

TEST_P(RunStoreConformanceTest, ListRunsPagesInSweepOrderAndFiltersByState) {
  // Created newest first, with runs given out of index order: the listing
  // is still (sweep create time, sweep id, index).
  std::vector<RunRecord> new_runs = MakeRuns("new", 2);
  std::swap(new_runs[0], new_runs[1]);
  ASSERT_OK(store().CreateSweep(MakeSweep("new", 2000), new_runs).status());
  std::vector<RunRecord> old_runs = MakeRuns("old", 3);
  std::swap(old_runs[0], old_runs[2]);
  ASSERT_OK(store().CreateSweep(MakeSweep("old", 1000), old_runs).status());

  RunFilter filter;
  ASSERT_OK_AND_ASSIGN(std::vector<RunRecord> all, store().ListRuns(filter));
  EXPECT_THAT(Ids(all),
              ElementsAre("old-r0", "old-r1", "old-r2", "new-r0", "new-r1"));

  filter.limit = 2;
  std::vector<std::string> paged;
  for (int page = 0; page < 10; ++page) {
    ASSERT_OK_AND_ASSIGN(std::vector<RunRecord> runs, store().ListRuns(filter));
    if (runs.empty()) break;
    for (const RunRecord& r : runs) paged.push_back(r.run_id);
    filter.after_run_id = runs.back().run_id;
  }
  EXPECT_THAT(paged,
              ElementsAre("old-r0", "old-r1", "old-r2", "new-r0", "new-r1"));

  filter = RunFilter();
  filter.sweep_id = "new";
  ASSERT_OK_AND_ASSIGN(std::vector<RunRecord> of_new, store().ListRuns(filter));
  EXPECT_THAT(Ids(of_new), ElementsAre("new-r0", "new-r1"));

  Apply("old-r1", Lease("w1", 2000, 9000));
  Apply("new-r0", Lease("w2", 2000, 9000));
  filter = RunFilter();
  filter.states = {RunState::kLeased};
  ASSERT_OK_AND_ASSIGN(std::vector<RunRecord> leased, store().ListRuns(filter));
  EXPECT_THAT(Ids(leased), ElementsAre("old-r1", "new-r0"));
  EXPECT_EQ(leased[0].lifecycle.worker_id, "w1");

  filter.states = {RunState::kPending};
  filter.after_run_id = "old-r1";  // the cursor need not match the filter
  ASSERT_OK_AND_ASSIGN(std::vector<RunRecord> pending,
                       store().ListRuns(filter));
  EXPECT_THAT(Ids(pending), ElementsAre("old-r2", "new-r1"));

  filter.states = {RunState::kPending, RunState::kLeased};
  filter.sweep_id = "new";
  filter.after_run_id = "";
  filter.limit = 1;
  ASSERT_OK_AND_ASSIGN(std::vector<RunRecord> one, store().ListRuns(filter));
  EXPECT_THAT(Ids(one), ElementsAre("new-r0"));

  filter = RunFilter();
  filter.states = {RunState::kSucceeded};
  ASSERT_OK_AND_ASSIGN(std::vector<RunRecord> none, store().ListRuns(filter));
  EXPECT_THAT(none, IsEmpty());
}

TEST_P(RunStoreConformanceTest,
       FullLifecycleAppendsEventsWithGapFreeSequences) {
  Create("s1", 2);
  Create("other", 1, 500);
  const std::string a = RunId("s1", 0), b = RunId("s1", 1);

  RunRecord run = Apply(a, Lease("w1", 2000, 10000));
  EXPECT_EQ(run.lifecycle.state, RunState::kLeased);
  EXPECT_EQ(Sweep("s1").state, SweepState::kRunning);
  Apply(a, ByWorker(Kind::kStart, "w1", 1, 2100));
  Append(a, 1, {Point("loss", 1, 0, 0.9), Point("loss", 2, 0, 0.8)});
  RunTransition checkpoint = ByWorker(Kind::kCheckpoint, "w1", 1, 2500);
  checkpoint.artifact_id = "sha256:ckpt";
  Apply(a, checkpoint);
  RunTransition renew = ByWorker(Kind::kRenewLease, "w1", 1, 2600);
  renew.lease_expire_ms = 20000;
  EXPECT_EQ(Apply(a, renew).lifecycle.lease_expire_ms, 20000);
  RunTransition succeed = ByWorker(Kind::kSucceed, "w1", 1, 3000);
  succeed.artifact_id = "sha256:adapter";
  run = Apply(a, succeed);
  EXPECT_EQ(run.lifecycle.state, RunState::kSucceeded);

  Apply(b, Lease("w2", 3100, 10000));
  // Metrics from a LEASED run start it.
  AppendMetricsResult appended = Append(b, 1, {Point("loss", 1, 0, 0.7)}, 3200);
  EXPECT_EQ(appended.run.lifecycle.state, RunState::kRunning);
  succeed = ByWorker(Kind::kSucceed, "w2", 1, 4000);
  succeed.artifact_id = "sha256:adapter-b";
  Apply(b, succeed);

  EXPECT_THAT(
      Described("s1"),
      ElementsAre("1 run s1-r0 LEASED a1 w1", "2 sweep RUNNING",
                  "3 run s1-r0 RUNNING a1 w1", "4 metric s1-r0 a1 loss@1",
                  "5 metric s1-r0 a1 loss@2", "6 run s1-r0 SUCCEEDED a1 w1",
                  "7 run s1-r1 LEASED a1 w2", "8 run s1-r1 RUNNING a1 w2",
                  "9 metric s1-r1 a1 loss@1", "10 run s1-r1 SUCCEEDED a1 w2",
                  "11 sweep SUCCEEDED"));
  const std::vector<EventRecord> events = Events("s1");
  EXPECT_EQ(events[0].time_ms, 2000);
  EXPECT_EQ(events[10].time_ms, 4000);

  const SweepRecord sweep = Sweep("s1");
  EXPECT_EQ(sweep.state, SweepState::kSucceeded);
  EXPECT_EQ(sweep.end_ms, 4000);
  EXPECT_EQ(sweep.counts.succeeded, 2);
  EXPECT_EQ(sweep.last_sequence, 11);

  run = Run(a);
  EXPECT_EQ(run.lifecycle.adapter_artifact_id, "sha256:adapter");
  EXPECT_EQ(run.lifecycle.checkpoint_artifact_id, "sha256:ckpt");
  EXPECT_EQ(run.lifecycle.start_ms, 2000);
  EXPECT_EQ(run.lifecycle.end_ms, 3000);
  EXPECT_EQ(run.lifecycle.worker_id, "");
  EXPECT_EQ(run.lifecycle.lease_expire_ms, 0);
  EXPECT_EQ(run.step, 2);
  ExpectConsistent("s1");

  // Another sweep's sequence is its own.
  Apply(RunId("other", 0), Lease("w3", 5000, 9000));
  EXPECT_THAT(Described("other"),
              ElementsAre("1 run other-r0 LEASED a1 w3", "2 sweep RUNNING"));
  ExpectConsistent("other");
}

TEST_P(RunStoreConformanceTest, FailedRunFailsTheSweepOnceAllRunsEnd) {
  Create("s1", 2, 1000, /*max_attempts=*/2);
  const std::string a = RunId("s1", 0), b = RunId("s1", 1);
  LeaseAndStart(a, "w1");
  RunTransition fail = ByWorker(Kind::kFail, "w1", 1, 3000);
  fail.retryable = false;
  fail.error = "bad config";
  EXPECT_EQ(Apply(a, fail).lifecycle.state, RunState::kFailed);
  EXPECT_EQ(Sweep("s1").state, SweepState::kRunning);
  LeaseAndStart(b, "w2");
  Apply(b, ByWorker(Kind::kSucceed, "w2", 1, 4000));
  const SweepRecord sweep = Sweep("s1");
  EXPECT_EQ(sweep.state, SweepState::kFailed);
  EXPECT_EQ(sweep.end_ms, 4000);
  EXPECT_THAT(
      Described("s1", false),
      ElementsAre("1 run s1-r0 LEASED a1 w1", "2 sweep RUNNING",
                  "3 run s1-r0 RUNNING a1 w1",
                  "4 run s1-r0 FAILED a1 w1 err=bad config",
                  "5 run s1-r1 LEASED a1 w2", "6 run s1-r1 RUNNING a1 w2",
                  "7 run s1-r1 SUCCEEDED a1 w2", "8 sweep FAILED"));
  ExpectConsistent("s1");
}

TEST_P(RunStoreConformanceTest, RejectedTransitionChangesNothing) {
  Create("s1", 1);
  const std::string r = RunId("s1", 0);
  absl::Status status =
      store().TransitionRun(r, ByWorker(Kind::kStart, "w1", 1, 2000)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr(r));

  Apply(r, Lease("w1", 2000, 9000));
  const int64_t sequence = Sweep("s1").last_sequence;
  status = store()
               .TransitionRun(r, ByWorker(Kind::kSucceed, "w2", 1, 3000))
               .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("lease lost"));
  status =
      store().TransitionRun(r, Coordinator(Kind::kExpireLease, 8999)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store().TransitionRun(r, Lease("w2", 3000, 9000)).status().code(),
            absl::StatusCode::kFailedPrecondition);

  const RunRecord run = Run(r);
  EXPECT_EQ(run.lifecycle.state, RunState::kLeased);
  EXPECT_EQ(run.lifecycle.worker_id, "w1");
  EXPECT_EQ(run.lifecycle.lease_expire_ms, 9000);
  EXPECT_EQ(Sweep("s1").last_sequence, sequence);
  ExpectConsistent("s1");
}

TEST_P(RunStoreConformanceTest, ExpiredLeaseReturnsRunToPendingUntilFailed) {
  Create("s1", 1, 1000, /*max_attempts=*/2);
  const std::string r = RunId("s1", 0);
  LeaseAndStart(r, "w1");
  Append(r, 1, {Point("loss", 10, 0, 0.5)});
  EXPECT_EQ(Run(r).step, 10);
  RunRecord run = Apply(r, Coordinator(Kind::kExpireLease, 100000));
  EXPECT_EQ(run.lifecycle.state, RunState::kPending);
  EXPECT_EQ(run.lifecycle.attempt, 2);
  EXPECT_EQ(run.lifecycle.error, "lease of worker w1 expired at attempt 1");
  EXPECT_EQ(run.step, 0);  // the new attempt has reported nothing yet
  EXPECT_EQ(Run(r).step, 0);
  // The old worker's lease is gone.
  EXPECT_EQ(store()
                .TransitionRun(r, ByWorker(Kind::kSucceed, "w1", 1, 100001))
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);

  Apply(r, Lease("w2", 100002, 200000));
  run = Apply(r, Coordinator(Kind::kExpireLease, 200000));
  EXPECT_EQ(run.lifecycle.state, RunState::kFailed);
  EXPECT_EQ(run.lifecycle.error, "lease of worker w2 expired at attempt 2");
  EXPECT_EQ(run.lifecycle.end_ms, 200000);
  EXPECT_EQ(Sweep("s1").state, SweepState::kFailed);
  // With its only run back in the queue, the sweep is PENDING again.
  EXPECT_THAT(
      Described("s1", false),
      ElementsAre("1 run s1-r0 LEASED a1 w1", "2 sweep RUNNING",
                  "3 run s1-r0 RUNNING a1 w1",
                  "5 run s1-r0 PENDING a2 w1 err=lease of worker w1 expired "
                  "at attempt 1",
                  "6 sweep PENDING", "7 run s1-r0 LEASED a2 w2",
                  "8 sweep RUNNING",
                  "9 run s1-r0 FAILED a2 w2 err=lease of worker w2 expired at "
                  "attempt 2",
                  "10 sweep FAILED"));
  ExpectConsistent("s1");
}

TEST_P(RunStoreConformanceTest, CancelSweepCancelsActiveRunsAndOnlyOnce) {
  Create("s1", 4);
  LeaseAndStart(RunId("s1", 0), "w0");
  Apply(RunId("s1", 0), ByWorker(Kind::kSucceed, "w0", 1, 3000));
  LeaseAndStart(RunId("s1", 1), "w1");
  Apply(RunId("s1", 2), Lease("w2", 3000, 9000));
  const int64_t before = Sweep("s1").last_sequence;

  ASSERT_OK_AND_ASSIGN(SweepRecord sweep, store().CancelSweep("s1", 9000));
  EXPECT_EQ(sweep.state, SweepState::kCancelled);
  EXPECT_TRUE(sweep.cancelled);
  EXPECT_EQ(sweep.end_ms, 9000);
  EXPECT_EQ(sweep.counts.succeeded, 1);
  EXPECT_EQ(sweep.counts.cancelled, 3);
  EXPECT_EQ(Run(RunId("s1", 0)).lifecycle.state, RunState::kSucceeded);
  EXPECT_EQ(Run(RunId("s1", 0)).lifecycle.end_ms, 3000);
  for (int i = 1; i < 4; ++i) {
    const RunRecord run = Run(RunId("s1", i));
    EXPECT_EQ(run.lifecycle.state, RunState::kCancelled);
    EXPECT_EQ(run.lifecycle.end_ms, 9000);
    EXPECT_EQ(run.lifecycle.worker_id, "");
  }
  EXPECT_THAT(
      Described("s1", false, before),
      ElementsAre(absl::StrCat(before + 1, " run s1-r1 CANCELLED a1 w1"),
                  absl::StrCat(before + 2, " run s1-r2 CANCELLED a1 w2"),
                  absl::StrCat(before + 3, " run s1-r3 CANCELLED a1 "),
                  absl::StrCat(before + 4, " sweep CANCELLED")));
  // The cancelled worker learns it from its next report.
  EXPECT_EQ(store()
                .AppendMetrics(RunId("s1", 1), 1, {Point("loss", 1, 0, 1)}, 1)
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);

  ASSERT_OK_AND_ASSIGN(SweepRecord again, store().CancelSweep("s1", 9999));
  EXPECT_EQ(again.end_ms, 9000);
  EXPECT_EQ(again.last_sequence, before + 4);
  ExpectConsistent("s1");

  // Cancelling a finished sweep changes nothing either.
  Create("done", 1);
  LeaseAndStart(RunId("done", 0), "w9");
  Apply(RunId("done", 0), ByWorker(Kind::kSucceed, "w9", 1, 3000));
  ASSERT_OK_AND_ASSIGN(SweepRecord done, store().CancelSweep("done", 9000));
  EXPECT_EQ(done.state, SweepState::kSucceeded);
  EXPECT_FALSE(done.cancelled);
  EXPECT_FALSE(Sweep("done").cancelled);
  ExpectConsistent("done");
}

TEST_P(RunStoreConformanceTest, RequeueFailedRunsGivesThemAFreshBudget) {
  Create("s1", 3, 1000, /*max_attempts=*/2);
  LeaseAndStart(RunId("s1", 0), "w0");
  RunTransition fail = ByWorker(Kind::kFail, "w0", 1, 3000);
  fail.retryable = false;
  fail.error = "diverged";
  Apply(RunId("s1", 0), fail);
  LeaseAndStart(RunId("s1", 1), "w1");
  Apply(RunId("s1", 1), ByWorker(Kind::kSucceed, "w1", 1, 3000));
  Apply(RunId("s1", 2), Coordinator(Kind::kCancel, 3000));
  EXPECT_EQ(Sweep("s1").state, SweepState::kFailed);
  const int64_t before = Sweep("s1").last_sequence;

  ASSERT_OK_AND_ASSIGN(int64_t requeued, store().RequeueFailedRuns("s1", 5000));
  EXPECT_EQ(requeued, 2);
  for (int i : {0, 2}) {
    const RunRecord run = Run(RunId("s1", i));
    EXPECT_EQ(run.lifecycle.state, RunState::kPending);
    EXPECT_EQ(run.lifecycle.attempt, 2);
    EXPECT_EQ(run.lifecycle.max_attempts, 3);  // attempts 2 and 3
    EXPECT_EQ(run.lifecycle.end_ms, 0);
  }
  EXPECT_EQ(Run(RunId("s1", 1)).lifecycle.state, RunState::kSucceeded);
  const SweepRecord sweep = Sweep("s1");
  EXPECT_EQ(sweep.state, SweepState::kRunning);
  EXPECT_EQ(sweep.end_ms, 0);
  EXPECT_THAT(Described("s1", false, before),
              ElementsAre(absl::StrCat(before + 1, " run s1-r0 PENDING a2 "),
                          absl::StrCat(before + 2, " run s1-r2 PENDING a2 "),
                          absl::StrCat(before + 3, " sweep RUNNING")));
  ASSERT_OK_AND_ASSIGN(requeued, store().RequeueFailedRuns("s1", 6000));
  EXPECT_EQ(requeued, 0);
  EXPECT_EQ(Sweep("s1").last_sequence, before + 3);
  ExpectConsistent("s1");

  // Requeueing a cancelled sweep clears its mark.
  Create("s2", 2);
  ASSERT_OK(store().CancelSweep("s2", 2000).status());
  ASSERT_OK_AND_ASSIGN(requeued, store().RequeueFailedRuns("s2", 3000));
  EXPECT_EQ(requeued, 2);
  const SweepRecord s2 = Sweep("s2");
  EXPECT_FALSE(s2.cancelled);
  EXPECT_EQ(s2.state, SweepState::kPending);
  EXPECT_EQ(s2.counts.pending, 2);
  ExpectConsistent("s2");
}

TEST_P(RunStoreConformanceTest, ResentMetricBatchIsCountedAsDuplicates) {
  Create("s1", 1);
  const std::string r = RunId("s1", 0);
  LeaseAndStart(r, "w1");
  const std::vector<MetricPoint> batch = {Point("loss", 1, 0, 0.9),
                                          Point("loss", 2, 0, 0.8),
                                          Point("val_accuracy", 2, 1, 0.7)};
  AppendMetricsResult first = Append(r, 1, batch);
  EXPECT_EQ(first.stored, 3);
  EXPECT_EQ(first.duplicates, 0);
  EXPECT_EQ(first.run.step, 2);
  const int64_t sequence = Sweep("s1").last_sequence;

  AppendMetricsResult again = Append(r, 1, batch);
  EXPECT_EQ(again.stored, 0);
  EXPECT_EQ(again.duplicates, 3);
  EXPECT_EQ(Sweep("s1").last_sequence, sequence);
  EXPECT_EQ(Series(r, "").size(), 3u);

  // Overlapping batch: only the new point is stored.
  AppendMetricsResult overlap = Append(
      r, 1, {Point("loss", 2, 0, 0.8), Point("loss", 3, 0, 0.75), batch[2]});
  EXPECT_EQ(overlap.stored, 1);
  EXPECT_EQ(overlap.duplicates, 2);
  EXPECT_EQ(Sweep("s1").last_sequence, sequence + 1);
  // The same point twice in one batch.
  AppendMetricsResult twice =
      Append(r, 1, {Point("loss", 4, 0, 0.7), Point("loss", 4, 0, 0.7)});
  EXPECT_EQ(twice.stored, 1);
  EXPECT_EQ(twice.duplicates, 1);

  const std::vector<MetricRecord> loss = Series(r, "loss");
  ASSERT_EQ(loss.size(), 4u);
  EXPECT_EQ(loss[1].point.value, 0.8);
  EXPECT_EQ(Run(r).step, 4);
  ExpectConsistent("s1");
}

TEST_P(RunStoreConformanceTest, MetricsOfAnOldAttemptOrInactiveRunAreRejected) {
  Create("s1", 1);
  const std::string r = RunId("s1", 0);
  auto append = [&](int64_t attempt) {
    return store()
        .AppendMetrics(r, attempt, {Point("loss", 1, 0, 1.0)}, 5000)
        .status();
  };
  EXPECT_EQ(append(1).code(),
            absl::StatusCode::kFailedPrecondition);  // PENDING
  Apply(r, Lease("w1", 2000, 3000));
  Apply(r, Coordinator(Kind::kExpireLease, 3000));
  Apply(r, Lease("w2", 4000, 90000));
  absl::Status old = append(1);
  EXPECT_EQ(old.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(old.message(), HasSubstr("attempt"));
  EXPECT_EQ(Run(r).lifecycle.state, RunState::kLeased);  // not started by it
  ASSERT_OK(append(2));
  Apply(r, ByWorker(Kind::kSucceed, "w2", 2, 6000));
  EXPECT_EQ(append(2).code(), absl::StatusCode::kFailedPrecondition);
  const std::vector<MetricRecord> series = Series(r, "");
  ASSERT_EQ(series.size(), 1u);
  EXPECT_EQ(series[0].attempt, 2);
  ExpectConsistent("s1");
}

TEST_P(RunStoreConformanceTest, ResumedAttemptReplacesReplayedSteps) {
  Create("s1", 1);
  const std::string r = RunId("s1", 0);
  LeaseAndStart(r, "w1");
  Append(r, 1,
         {Point("loss", 1, 0, 1.0), Point("loss", 2, 0, 0.9),
          Point("lr", 1, 0, 1e-4)});
  RunTransition checkpoint = ByWorker(Kind::kCheckpoint, "w1", 1, 3000);
  checkpoint.artifact_id = "sha256:step2";
  Apply(r, checkpoint);
  Append(r, 1, {Point("loss", 3, 0, 0.8), Point("loss", 4, 0, 0.7)});
  RunRecord run = Apply(r, Coordinator(Kind::kExpireLease, 100000));
  EXPECT_EQ(run.lifecycle.checkpoint_artifact_id, "sha256:step2");

  // Attempt 2 resumes from the step-2 checkpoint and replays steps 3 and 4.
  LeaseAndStart(r, "w2", 2, 100001);
  AppendMetricsResult resumed =
      Append(r, 2,
             {Point("loss", 3, 0, 0.85), Point("loss", 4, 0, 0.75),
              Point("loss", 5, 0, 0.65)});
  EXPECT_EQ(resumed.stored, 3);
  EXPECT_EQ(resumed.run.step, 5);

  const std::vector<MetricRecord> loss = Series(r, "loss");
  ASSERT_EQ(loss.size(), 5u);
  const int64_t attempts[] = {1, 1, 2, 2, 2};
  const double values[] = {1.0, 0.9, 0.85, 0.75, 0.65};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(loss[i].point.step, i + 1);
    EXPECT_EQ(loss[i].attempt, attempts[i]);
    EXPECT_EQ(loss[i].point.value, values[i]);
    EXPECT_EQ(loss[i].run_id, r);
    EXPECT_GT(loss[i].sequence, 0);
  }
  const std::vector<MetricRecord> all = Series(r, "");
  ASSERT_EQ(all.size(), 6u);  // loss 1..5, then lr 1
  EXPECT_EQ(all[5].point.name, "lr");
  EXPECT_EQ(all[5].point.value, 1e-4);
  // Every stored point is an event, replaced ones included.
  int metric_events = 0;
  for (const EventRecord& e : Events("s1")) {
    metric_events += e.kind == EventKind::kMetric;
  }
  EXPECT_EQ(metric_events, 8);
  ExpectConsistent("s1");
}

TEST_P(RunStoreConformanceTest, BestMetricFollowsTheSweepGoal) {
  Create("max", 1, 1000, 3, "val_accuracy", /*maximize=*/true);
  Create("min", 1, 1000, 3, "val_loss", /*maximize=*/false);
  const std::string up = RunId("max", 0), down = RunId("min", 0);
  LeaseAndStart(up, "w1");
  LeaseAndStart(down, "w2");
  EXPECT_FALSE(Run(up).best_metric.has_value());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  AppendMetricsResult result =
      Append(up, 1,
             {Point("val_accuracy", 100, 1, 0.80), Point("loss", 100, 1, 5.0),
              Point("val_accuracy", 200, 2, 0.91)});
  ASSERT_TRUE(result.run.best_metric.has_value());
  EXPECT_EQ(*result.run.best_metric, 0.91);
  EXPECT_EQ(result.run.best_epoch, 2);
  Append(up, 1,
         {Point("val_accuracy", 300, 3, 0.89),
          Point("val_accuracy", 400, 4, nan)});
  RunRecord run = Run(up);
  EXPECT_EQ(run.best_metric, 0.91);
  EXPECT_EQ(run.best_epoch, 2);
  // NaN is stored and read back as NaN.
  const std::vector<MetricRecord> series = Series(up, "val_accuracy");
  ASSERT_EQ(series.size(), 4u);
  EXPECT_TRUE(std::isnan(series[3].point.value));

  Append(down, 1,
         {Point("val_loss", 100, 1, 0.5), Point("val_loss", 200, 2, 0.3),
          Point("val_loss", 300, 3, 0.4), Point("val_accuracy", 300, 3, 0.1)});
  run = Run(down);
  EXPECT_EQ(run.best_metric, 0.3);
  EXPECT_EQ(run.best_epoch, 2);
}

TEST_P(RunStoreConformanceTest, BestMetricDropsAReplacedPoint) {
  Create("s1", 1);
  const std::string r = RunId("s1", 0);
  LeaseAndStart(r, "w1");
  Append(r, 1,
         {Point("val_accuracy", 100, 1, 0.70),
          Point("val_accuracy", 200, 2, 0.95)});
  EXPECT_EQ(Run(r).best_metric, 0.95);
  Apply(r, Coordinator(Kind::kExpireLease, 100000));
  LeaseAndStart(r, "w2", 2, 100001);
  // Attempt 2 resumes from epoch 1 and does worse at epoch 2: the 0.95 of
  // attempt 1 is no longer part of the run's series.
  AppendMetricsResult result =
      Append(r, 2, {Point("val_accuracy", 200, 2, 0.90)});
  EXPECT_EQ(result.run.best_metric, 0.90);
  EXPECT_EQ(result.run.best_epoch, 2);
  result = Append(r, 2, {Point("val_accuracy", 300, 3, 0.92)});
  EXPECT_EQ(result.run.best_metric, 0.92);
  EXPECT_EQ(result.run.best_epoch, 3);
  EXPECT_EQ(Run(r).best_metric, 0.92);
}

TEST_P(RunStoreConformanceTest, ReadEventsFiltersMetricsAndResumes) {
  Create("s1", 1);
  const std::string r = RunId("s1", 0);
  Apply(r, Lease("w1", 2000, 90000));  // 1, 2 (sweep)
  Append(r, 1,
         {Point("loss", 1, 0, 0.5, 2222),             // 3 RUNNING
          Point("loss", 2, 1, 0.25, 2223)});          // 4, 5
  Apply(r, ByWorker(Kind::kSucceed, "w1", 1, 3000));  // 6, 7 (sweep)

  const std::vector<EventRecord> all = Events("s1");
  ASSERT_EQ(all.size(), 7u);
  const EventRecord& metric = all[4];
  EXPECT_EQ(metric.kind, EventKind::kMetric);
  EXPECT_EQ(metric.sequence, 5);
  EXPECT_EQ(metric.run_id, r);
  EXPECT_EQ(metric.attempt, 1);
  EXPECT_EQ(metric.metric.name, "loss");
  EXPECT_EQ(metric.metric.step, 2);
  EXPECT_EQ(metric.metric.epoch, 1);
  EXPECT_EQ(metric.metric.value, 0.25);
  EXPECT_EQ(metric.metric.time_ms, 2223);
  EXPECT_EQ(metric.time_ms, 2223);
  EXPECT_EQ(all[6].kind, EventKind::kSweepState);
  EXPECT_EQ(all[6].sweep_state, SweepState::kSucceeded);

  std::vector<int64_t> sequences;
  for (const EventRecord& e : Events("s1", /*include_metrics=*/false)) {
    EXPECT_NE(e.kind, EventKind::kMetric);
    sequences.push_back(e.sequence);
  }
  EXPECT_THAT(sequences, ElementsAre(1, 2, 3, 6, 7));

  EXPECT_THAT(Described("s1", true, 4),
              ElementsAre("5 metric s1-r0 a1 loss@2",
                          "6 run s1-r0 SUCCEEDED a1 w1", "7 sweep SUCCEEDED"));
  EXPECT_THAT(Described("s1", false, 3),
              ElementsAre("6 run s1-r0 SUCCEEDED a1 w1", "7 sweep SUCCEEDED"));
  ASSERT_OK_AND_ASSIGN(std::vector<EventRecord> two,
                       store().ReadEvents("s1", 2, 2, true));
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].sequence, 3);
  EXPECT_EQ(two[1].sequence, 4);
  ASSERT_OK_AND_ASSIGN(std::vector<EventRecord> two_state,
                       store().ReadEvents("s1", 2, 2, false));
  ASSERT_EQ(two_state.size(), 2u);
  EXPECT_EQ(two_state[1].sequence, 6);
  EXPECT_THAT(Events("s1", true, 7), IsEmpty());
}

TEST_P(RunStoreConformanceTest, WorkersAreUpsertedById) {
  WorkerRecord w2{"w2", "gpu-box", std::string("\x08\x01\x00\xff", 4), 100,
                  150};
  WorkerRecord w1{"w1", "cpu-box", "", 200, 200};
  ASSERT_OK(store().UpsertWorker(w2));
  ASSERT_OK(store().UpsertWorker(w1));
  ASSERT_OK_AND_ASSIGN(std::vector<WorkerRecord> workers,
                       store().ListWorkers());
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(workers[0].worker_id, "w1");
  EXPECT_EQ(workers[1].worker_id, "w2");
  EXPECT_EQ(workers[1].capabilities, std::string("\x08\x01\x00\xff", 4));
  EXPECT_EQ(workers[1].register_ms, 100);

  w2.name = "gpu-box-2";
  w2.last_heartbeat_ms = 999;
  w2.capabilities = "\x10\x02";
  ASSERT_OK(store().UpsertWorker(w2));
  ASSERT_OK_AND_ASSIGN(workers, store().ListWorkers());
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(workers[1].name, "gpu-box-2");
  EXPECT_EQ(workers[1].last_heartbeat_ms, 999);
  EXPECT_EQ(workers[1].capabilities, "\x10\x02");
  EXPECT_EQ(store().UpsertWorker(WorkerRecord{}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(RunStoreConformanceTest, ArtifactsArePutOnceAndListedNewestFirst) {
  ArtifactRecord a1;
  a1.artifact_id = "sha256:a1";
  a1.kind = 1;
  a1.name = "adapter";
  a1.files = {{"b.safetensors", 20, "bb"}, {"a.json", 10, "aa"}};
  a1.size_bytes = 30;
  a1.run_id = "s1-r0";
  a1.create_ms = 1000;
  ASSERT_OK_AND_ASSIGN(bool inserted, store().PutArtifact(a1));
  EXPECT_TRUE(inserted);
  ArtifactRecord changed = a1;
  changed.name = "other";
  changed.files.clear();
  ASSERT_OK_AND_ASSIGN(inserted, store().PutArtifact(changed));
  EXPECT_FALSE(inserted);
  ASSERT_OK_AND_ASSIGN(ArtifactRecord got, store().GetArtifact("sha256:a1"));
  EXPECT_EQ(got.name, "adapter");
  EXPECT_EQ(got.kind, 1);
  EXPECT_EQ(got.size_bytes, 30);
  EXPECT_EQ(got.run_id, "s1-r0");
  EXPECT_EQ(got.create_ms, 1000);
  ASSERT_EQ(got.files.size(), 2u);
  EXPECT_EQ(got.files[0].path, "a.json");
  EXPECT_EQ(got.files[0].size_bytes, 10);
  EXPECT_EQ(got.files[0].sha256, "aa");
  EXPECT_EQ(got.files[1].path, "b.safetensors");

  ArtifactRecord a2 = a1;
  a2.artifact_id = "sha256:a2";
  a2.kind = 2;
  a2.create_ms = 2000;
  ArtifactRecord a3 = a1;
  a3.artifact_id = "sha256:a3";
  a3.run_id = "";
  a3.create_ms = 3000;
  a3.files = {};
  ASSERT_OK(store().PutArtifact(a2).status());
  ASSERT_OK(store().PutArtifact(a3).status());

  ASSERT_OK_AND_ASSIGN(std::vector<ArtifactRecord> all,
                       store().ListArtifacts(0, "", "", 10));
  EXPECT_THAT(Ids(all), ElementsAre("sha256:a3", "sha256:a2", "sha256:a1"));
  for (const ArtifactRecord& a : all) EXPECT_THAT(a.files, IsEmpty());
  EXPECT_EQ(all[2].name, "adapter");
  ASSERT_OK_AND_ASSIGN(std::vector<ArtifactRecord> kind1,
                       store().ListArtifacts(1, "", "", 10));
  EXPECT_THAT(Ids(kind1), ElementsAre("sha256:a3", "sha256:a1"));
  ASSERT_OK_AND_ASSIGN(std::vector<ArtifactRecord> of_run,
                       store().ListArtifacts(0, "s1-r0", "", 10));
  EXPECT_THAT(Ids(of_run), ElementsAre("sha256:a2", "sha256:a1"));
  ASSERT_OK_AND_ASSIGN(std::vector<ArtifactRecord> page,
                       store().ListArtifacts(0, "", "sha256:a3", 1));
  EXPECT_THAT(Ids(page), ElementsAre("sha256:a2"));
  ASSERT_OK_AND_ASSIGN(page, store().ListArtifacts(1, "", "sha256:a2", 5));
  EXPECT_THAT(Ids(page), ElementsAre("sha256:a1"));

  ArtifactRecord twice = a1;
  twice.artifact_id = "sha256:bad";
  twice.files = {{"x", 1, "x"}, {"x", 1, "x"}};
  EXPECT_EQ(store().PutArtifact(twice).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().GetArtifact("sha256:bad").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store().PutArtifact(ArtifactRecord{}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Each worker thread drives its own runs through a whole attempt, appending
// metric batches, against `stores[i % stores.size()]`.
void DriveRunsConcurrently(const std::vector<RunStore*>& stores,
                           const std::string& sweep_id, int runs, int threads,
                           int batches, int points_per_batch) {
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      RunStore& store = *stores[t % stores.size()];
      const std::string worker = absl::StrCat("w", t);
      for (int i = t; i < runs; i += threads) {
        const std::string run_id = RunId(sweep_id, i);
        ASSERT_OK(
            store.TransitionRun(run_id, Lease(worker, 2000, 900000)).status());
        for (int b = 0; b < batches; ++b) {
          std::vector<MetricPoint> batch;
          for (int p = 0; p < points_per_batch; ++p) {
            const int64_t step = b * points_per_batch + p + 1;
            batch.push_back(Point("loss", step, 0, 1.0 / step));
          }
          ASSERT_OK_AND_ASSIGN(AppendMetricsResult result,
                               store.AppendMetrics(run_id, 1, batch, 3000));
          ASSERT_EQ(result.stored, points_per_batch);
          if (b % 5 == 0) {
            RunTransition renew =
                ByWorker(Kind::kRenewLease, worker, 1, 3000 + b);
            renew.lease_expire_ms = 900000 + b;
            ASSERT_OK(store.TransitionRun(run_id, renew).status());
          }
        }
        ASSERT_OK(store
                      .TransitionRun(run_id,
                                     ByWorker(Kind::kSucceed, worker, 1, 5000))
                      .status());
      }
    });
  }
  // A reader alongside, as WatchSweep would be.
  std::thread reader([&] {
    int64_t after = 0;
    for (int i = 0; i < 50; ++i) {
      absl::StatusOr<std::vector<EventRecord>> events =
          stores[0]->ReadEvents(sweep_id, after, 100, true);
      ASSERT_TRUE(events.ok()) << events.status();
      for (const EventRecord& e : *events) {
        ASSERT_EQ(e.sequence, after + 1);  // in order, no gap, no repeat
        after = e.sequence;
      }
    }
  });
  for (std::thread& w : workers) w.join();
  reader.join();
}

TEST_P(RunStoreConformanceTest, ConcurrentWritersKeepCountsExact) {
  constexpr int kRuns = 8, kThreads = 4, kBatches = 15, kPoints = 4;
  Create("s1", kRuns);
  DriveRunsConcurrently({&store()}, "s1", kRuns, kThreads, kBatches, kPoints);
  if (HasFatalFailure()) return;

  const SweepRecord sweep = Sweep("s1");
  EXPECT_EQ(sweep.state, SweepState::kSucceeded);
  EXPECT_EQ(sweep.counts.succeeded, kRuns);
  // Per run LEASED, RUNNING, SUCCEEDED and its points; RUNNING and
  // SUCCEEDED for the sweep.
  EXPECT_EQ(sweep.last_sequence, kRuns * (3 + kBatches * kPoints) + 2);
  for (int i = 0; i < kRuns; ++i) {
    EXPECT_EQ(Series(RunId("s1", i), "loss").size(),
              static_cast<size_t>(kBatches * kPoints));
    EXPECT_EQ(Run(RunId("s1", i)).step, kBatches * kPoints);
  }
  ExpectConsistent("s1");
}

TEST_P(RunStoreConformanceTest, TwoHandlesOnTheSameDataWriteConcurrently) {
  if (!GetParam().shared_across_opens) {
    GTEST_SKIP() << GetParam().name << " keeps no data across handles";
  }
  constexpr int kRuns = 6, kThreads = 2, kBatches = 10, kPoints = 5;
  Create("s1", kRuns);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RunStore> second, GetParam().open(dir_));
  DriveRunsConcurrently({&store(), second.get()}, "s1", kRuns, kThreads,
                        kBatches, kPoints);
  if (HasFatalFailure()) return;

  ASSERT_OK_AND_ASSIGN(SweepRecord seen_by_second, second->GetSweep("s1"));
  const SweepRecord sweep = Sweep("s1");
  EXPECT_EQ(seen_by_second.last_sequence, sweep.last_sequence);
  EXPECT_EQ(sweep.state, SweepState::kSucceeded);
  EXPECT_EQ(sweep.counts.succeeded, kRuns);
  EXPECT_EQ(sweep.last_sequence, kRuns * (3 + kBatches * kPoints) + 2);
  ExpectConsistent("s1");
}

INSTANTIATE_TEST_SUITE_P(
    AllStores, RunStoreConformanceTest,
    ::testing::Values(MemoryFactory(), SqliteFactory()),
    [](const ::testing::TestParamInfo<StoreFactory>& info) {
      return info.param.name;
    });

}  // namespace
}  // namespace lora::coordinator
