// A whole sweep through the real lorad: 8 runs (lora.rank x seed) leased by
// two concurrent test workers that stream progress and finish every run;
// the sweep ends SUCCEEDED, GetResults aggregates the rank groups, ListRuns
// and GetRun show the latest metrics, and WatchSweep replays every event in
// order, live, from the start and from the middle.
#include <atomic>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/integration/lorad_process.h"
#include "tests/integration/test_clients.h"

namespace lora::integration {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;

const char kSweep[] = R"(name: rank-ablation
model: roberta-tiny
task: polarity
parameters:
  lora.rank: [1, 2, 4, 8]
  seed: [0, 1]
fixed: {epochs: 3, batch_size: 8}
metric: {name: val_accuracy, goal: maximize}
max_attempts: 2
)";

constexpr int kEpochs = 3;
constexpr int kStepsPerEpoch = 2;
constexpr int kRuns = 8;

// What the fake training reports for a run: val_accuracy peaks at epoch 2,
// so the best value is not the latest one.
double BaseAccuracy(int rank, int seed) {
  return 0.5 + 0.03 * std::log2(rank) + 0.01 * seed;
}
double Accuracy(int rank, int seed, int epoch) {
  static const double kBump[] = {0, 0.0, 0.1, 0.05};
  return BaseAccuracy(rank, seed) + kBump[epoch];
}
double BestAccuracy(int rank, int seed) { return Accuracy(rank, seed, 2); }
double TrainLoss(int rank, int step) { return 1.0 / step + 0.001 * rank; }

// (run, name, step) -> value.
using PointKey = std::tuple<std::string, std::string, int64_t>;

struct WorkLog {
  std::mutex mutex;
  std::map<std::string, std::string> leased_by;  // run id -> worker id
  std::map<PointKey, double> points;
  std::vector<std::string> failures;
};

// Leases and completes runs until `kRuns` are done or time runs out.
void WorkerLoop(TestWorker* worker, WorkLog* log, std::atomic<int>* finished) {
  const absl::Time give_up = absl::Now() + absl::Seconds(40);
  auto fail = [log](std::string what) {
    std::lock_guard<std::mutex> lock(log->mutex);
    log->failures.push_back(std::move(what));
  };
  while (finished->load() < kRuns && absl::Now() < give_up) {
    v1::AcquireJobResponse acquired;
    grpc::Status status = worker->Acquire(absl::Milliseconds(300), &acquired);
    if (!status.ok()) return fail("AcquireJob: " + status.error_message());
    if (!acquired.has_job()) continue;
    const v1::Job job = acquired.job();
    const std::string& run_id = job.run().run_id();
    const int rank = job.run().config().lora().rank();
    const int seed = static_cast<int>(job.run().config().seed());
    if (job.attempt() != 1)
      fail(run_id + ": attempt " + std::to_string(job.attempt()));
    if (job.metric().name() != "val_accuracy")
      fail("metric " + job.metric().name());
    {
      std::lock_guard<std::mutex> lock(log->mutex);
      if (!log->leased_by.emplace(run_id, worker->worker_id()).second) {
        log->failures.push_back(run_id + " leased twice");
      }
    }
    std::unique_ptr<ProgressStream> stream = worker->OpenProgress();
    for (int epoch = 1; epoch <= kEpochs; ++epoch) {
      std::vector<v1::MetricPoint> points;
      for (int i = 1; i <= kStepsPerEpoch; ++i) {
        const int step = (epoch - 1) * kStepsPerEpoch + i;
        points.push_back(
            Point("train_loss", step, epoch, TrainLoss(rank, step)));
      }
      const int last_step = epoch * kStepsPerEpoch;
      points.push_back(
          Point("val_accuracy", last_step, epoch, Accuracy(rank, seed, epoch)));
      v1::ProgressBatch batch = Batch(job, epoch, points);
      if (epoch == 1) {
        *batch.mutable_measured_parameter_counts() =
            job.run().parameter_counts();
      }
      v1::ProgressAck ack;
      if (!stream->Send(batch, &ack)) {
        return fail(run_id +
                    ": stream broke: " + stream->Close().error_message());
      }
      if (ack.acked_sequence() != epoch || ack.stop()) {
        return fail(absl::StrCat(run_id, ": ack ", ack.acked_sequence(),
                                 " stop=", ack.stop(), " for batch ", epoch));
      }
      std::lock_guard<std::mutex> lock(log->mutex);
      for (const v1::MetricPoint& point : points) {
        log->points[{run_id, point.name(), point.step()}] = point.value();
      }
    }
    status = stream->Close();
    if (!status.ok()) fail(run_id + ": stream: " + status.error_message());
    v1::FinishRunResponse finished_reply;
    status = worker->Finish(job, v1::RUN_OUTCOME_SUCCEEDED, &finished_reply);
    if (!status.ok()) return fail(run_id + ": " + status.error_message());
    if (finished_reply.state() != v1::RUN_STATE_SUCCEEDED) {
      fail(run_id + ": finished as " +
           v1::RunState_Name(finished_reply.state()));
    }
    finished->fetch_add(1);
  }
}

bool SameEvents(const std::vector<v1::SweepEvent>& a,
                const std::vector<v1::SweepEvent>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!MessageDifferencer::Equals(a[i], b[i])) return false;
  }
  return true;
}

class SweepLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LoradOptions options;
    options.dir = FreshTestDir("lifecycle");
    // Short heartbeats; a TTL long enough that a loaded machine never
    // expires a lease of this test's busy workers.
    options.heartbeat_interval = "200ms";
    options.lease_ttl = "10s";
    absl::StatusOr<std::unique_ptr<LoradProcess>> lorad =
        LoradProcess::Start(options);
    ASSERT_TRUE(lorad.ok()) << lorad.status();
    lorad_ = std::move(*lorad);
    sweeps_ = lorad_->SweepStub();
  }

  void TearDown() override {
    // Clients first: lorad's shutdown waits (up to 5 s) for connected
    // clients to go away.
    sweeps_.reset();
    if (lorad_ != nullptr) {
      absl::Status stopped = lorad_->Stop();
      EXPECT_TRUE(stopped.ok()) << stopped;
    }
  }

  std::unique_ptr<LoradProcess> lorad_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
};

TEST_F(SweepLifecycleTest, TwoWorkersCompleteASweepAndEveryViewAgrees) {
  v1::SubmitSweepResponse submitted;
  grpc::Status status = SubmitYaml(sweeps_.get(), kSweep, &submitted);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_FALSE(submitted.already_existed());
  ASSERT_EQ(submitted.runs_size(), kRuns);
  const std::string sweep_id = submitted.sweep().sweep_id();
  EXPECT_EQ(submitted.sweep().state(), v1::SWEEP_STATE_PENDING);
  EXPECT_EQ(submitted.sweep().metric().name(), "val_accuracy");
  std::map<std::string, v1::Run> submitted_runs;
  for (const v1::Run& run : submitted.runs()) {
    EXPECT_EQ(run.state(), v1::RUN_STATE_PENDING);
    submitted_runs[run.run_id()] = run;
  }
  ASSERT_EQ(submitted_runs.size(), static_cast<size_t>(kRuns));

  // A live watcher, started before any work.
  WatchResult live;
  std::thread live_watch([&] {
    live = WatchToEnd(sweeps_.get(), sweep_id, 0, /*include_metrics=*/true,
                      absl::Seconds(50));
  });

  TestWorker a(lorad_->NewChannel(), "worker-a");
  TestWorker b(lorad_->NewChannel(), "worker-b");
  ASSERT_TRUE(a.Register().ok());
  ASSERT_TRUE(b.Register().ok());
  ASSERT_NE(a.worker_id(), b.worker_id());
  WorkLog log;
  std::atomic<int> finished{0};
  std::thread worker_a([&] { WorkerLoop(&a, &log, &finished); });
  std::thread worker_b([&] { WorkerLoop(&b, &log, &finished); });
  worker_a.join();
  worker_b.join();
  live_watch.join();
  ASSERT_THAT(log.failures, ::testing::IsEmpty());
  ASSERT_EQ(finished.load(), kRuns);
  ASSERT_EQ(log.leased_by.size(), static_cast<size_t>(kRuns));
  ASSERT_EQ(log.points.size(),
            static_cast<size_t>(kRuns * kEpochs * (kStepsPerEpoch + 1)));

  absl::StatusOr<v1::Sweep> sweep = GetSweep(sweeps_.get(), sweep_id);
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  EXPECT_EQ(sweep->state(), v1::SWEEP_STATE_SUCCEEDED);
  EXPECT_EQ(sweep->total_runs(), kRuns);
  EXPECT_EQ(sweep->run_counts().at("SUCCEEDED"), kRuns);
  EXPECT_TRUE(sweep->has_end_time());

  // --- ListRuns (paged) and GetRun. ---
  absl::StatusOr<std::vector<v1::Run>> runs =
      ListAllRuns(sweeps_.get(), sweep_id, 3);
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), static_cast<size_t>(kRuns));
  std::set<std::string> listed_ids;
  for (const v1::Run& run : *runs) {
    SCOPED_TRACE(run.run_id());
    listed_ids.insert(run.run_id());
    ASSERT_TRUE(submitted_runs.count(run.run_id()));
    const int rank = run.config().lora().rank();
    const int seed = static_cast<int>(run.config().seed());
    EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED);
    EXPECT_EQ(run.attempt(), 1);
    EXPECT_EQ(run.step(), kEpochs * kStepsPerEpoch);
    EXPECT_DOUBLE_EQ(run.best_metric(), BestAccuracy(rank, seed));
    EXPECT_EQ(run.best_epoch(), 2);
    EXPECT_EQ(run.parameters().at("lora.rank").number_value(), rank);
    EXPECT_EQ(run.parameters().at("seed").number_value(), seed);
    // ListRuns returns lora.v1.Run, whose latest_metrics is documented as
    // the latest value of every metric reported for the run.
    EXPECT_EQ(run.latest_metrics_size(), 2);
    if (run.latest_metrics().count("val_accuracy")) {
      EXPECT_DOUBLE_EQ(run.latest_metrics().at("val_accuracy"),
                       Accuracy(rank, seed, kEpochs));
    }

    absl::StatusOr<v1::Run> got = GetRun(sweeps_.get(), run.run_id());
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->state(), v1::RUN_STATE_SUCCEEDED);
    ASSERT_EQ(got->latest_metrics_size(), 2);
    EXPECT_DOUBLE_EQ(got->latest_metrics().at("val_accuracy"),
                     Accuracy(rank, seed, kEpochs));
    EXPECT_DOUBLE_EQ(got->latest_metrics().at("train_loss"),
                     TrainLoss(rank, kEpochs * kStepsPerEpoch));
    EXPECT_DOUBLE_EQ(got->best_metric(), BestAccuracy(rank, seed));
  }
  EXPECT_EQ(listed_ids.size(), static_cast<size_t>(kRuns));

  // --- GetResults: 4 rank groups of 2 seeds. ---
  v1::GetResultsRequest results_request;
  results_request.set_sweep_id(sweep_id);
  v1::GetResultsResponse results;
  {
    grpc::ClientContext context;
    PrepareContext(&context, "");
    status = sweeps_->GetResults(&context, results_request, &results);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_EQ(results.group_by(), "lora.rank");
  EXPECT_EQ(results.metric().name(), "val_accuracy");
  EXPECT_EQ(results.metric().goal(), v1::METRIC_GOAL_MAXIMIZE);
  ASSERT_EQ(results.runs_size(), kRuns);
  for (const v1::RunResult& result : results.runs()) {
    SCOPED_TRACE(result.run_id());
    const int rank =
        static_cast<int>(result.parameters().at("lora.rank").number_value());
    const int seed =
        static_cast<int>(result.parameters().at("seed").number_value());
    EXPECT_EQ(result.state(), v1::RUN_STATE_SUCCEEDED);
    EXPECT_DOUBLE_EQ(result.best_metric(), BestAccuracy(rank, seed));
    EXPECT_EQ(result.best_epoch(), 2);
    ASSERT_EQ(result.metric_curve_size(), kEpochs);
    for (int epoch = 1; epoch <= kEpochs; ++epoch) {
      EXPECT_EQ(result.metric_curve(epoch - 1).epoch(), epoch);
      EXPECT_DOUBLE_EQ(result.metric_curve(epoch - 1).value(),
                       Accuracy(rank, seed, epoch));
    }
    EXPECT_DOUBLE_EQ(result.final_metrics().at("train_loss"),
                     TrainLoss(rank, kEpochs * kStepsPerEpoch));
  }
  ASSERT_EQ(results.groups_size(), 4);
  const int ranks[] = {1, 2, 4, 8};
  int64_t previous_trainable = 0;
  for (int i = 0; i < 4; ++i) {
    const v1::ResultGroup& group = results.groups(i);
    const int rank = ranks[i];
    SCOPED_TRACE(absl::StrCat("rank ", rank));
    EXPECT_EQ(group.value().number_value(), rank);
    EXPECT_EQ(group.runs(), 2);
    const double b0 = BestAccuracy(rank, 0);
    const double b1 = BestAccuracy(rank, 1);
    EXPECT_NEAR(group.metric_mean(), (b0 + b1) / 2, 1e-12);
    EXPECT_NEAR(group.metric_std(), std::abs(b1 - b0) / std::sqrt(2.0), 1e-12);
    EXPECT_DOUBLE_EQ(group.metric_min(), std::min(b0, b1));
    EXPECT_DOUBLE_EQ(group.metric_max(), std::max(b0, b1));
    // roberta-tiny: hidden 32, 2 layers; LoRA on query and value adds
    // r * (32 + 32) per matrix, 4 matrices.
    int64_t head = -1;
    for (const auto& [id, run] : submitted_runs) {
      if (run.config().lora().rank() != rank) continue;
      const v1::ParameterCounts& counts = run.parameter_counts();
      EXPECT_EQ(counts.lora(), 256 * rank);
      EXPECT_EQ(counts.trainable(), counts.lora() + counts.head());
      EXPECT_EQ(counts.total(), counts.base() + counts.lora() + counts.head());
      EXPECT_EQ(group.trainable_parameters(), counts.trainable());
      EXPECT_EQ(group.total_parameters(), counts.total());
      head = counts.head();
    }
    EXPECT_GT(head, 0);
    EXPECT_EQ(group.trainable_parameters(), 256 * rank + head);
    EXPECT_NEAR(group.trainable_percent(),
                100.0 * group.trainable_parameters() / group.total_parameters(),
                1e-9);
    EXPECT_GT(group.trainable_parameters(), previous_trainable);
    previous_trainable = group.trainable_parameters();
  }

  // --- WatchSweep. ---
  ASSERT_TRUE(live.status.ok()) << live.status.error_message();
  WatchResult replay = WatchToEnd(sweeps_.get(), sweep_id, 0, true);
  ASSERT_TRUE(replay.status.ok()) << replay.status.error_message();
  const std::vector<v1::SweepEvent>& events = replay.events;
  EXPECT_TRUE(SameEvents(live.events, events))
      << "live " << live.events.size() << " events, replay " << events.size();

  // Gap-free and strictly increasing from 1 (metrics included).
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].sequence(), static_cast<int64_t>(i + 1));
  }
  std::map<std::string, std::vector<v1::RunState>> states;
  std::map<PointKey, double> seen_points;
  std::vector<v1::SweepState> sweep_states;
  for (const v1::SweepEvent& event : events) {
    if (event.has_run_state()) {
      const v1::RunStateChange& change = event.run_state();
      states[change.run_id()].push_back(change.state());
      EXPECT_EQ(change.attempt(), 1);
      EXPECT_EQ(change.worker_id(), log.leased_by[change.run_id()])
          << change.run_id();
    } else if (event.has_metric()) {
      const v1::RunMetric& metric = event.metric();
      const PointKey key{metric.run_id(), metric.point().name(),
                         metric.point().step()};
      EXPECT_TRUE(seen_points.emplace(key, metric.point().value()).second)
          << "point seen twice: " << metric.run_id() << " "
          << metric.point().name() << "@" << metric.point().step();
      // A run's points follow its move to RUNNING.
      EXPECT_THAT(states[metric.run_id()],
                  ::testing::Contains(v1::RUN_STATE_RUNNING));
    } else {
      ASSERT_TRUE(event.has_sweep_state());
      sweep_states.push_back(event.sweep_state().state());
    }
  }
  EXPECT_EQ(seen_points, log.points);
  ASSERT_EQ(states.size(), static_cast<size_t>(kRuns));
  for (const auto& [run_id, run_states] : states) {
    EXPECT_THAT(run_states,
                ElementsAre(v1::RUN_STATE_LEASED, v1::RUN_STATE_RUNNING,
                            v1::RUN_STATE_SUCCEEDED))
        << run_id;
  }
  EXPECT_THAT(sweep_states,
              ElementsAre(v1::SWEEP_STATE_RUNNING, v1::SWEEP_STATE_SUCCEEDED));
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(events.back().has_sweep_state());
  EXPECT_EQ(events.size(), size_t{kRuns} * 3 + log.points.size() + 2);

  // Resuming from the middle sees exactly the rest.
  for (size_t middle :
       {size_t{1}, events.size() / 3, events.size() / 2, events.size() - 1}) {
    SCOPED_TRACE(absl::StrCat("resume after event #", middle));
    WatchResult rest = WatchToEnd(sweeps_.get(), sweep_id,
                                  events[middle - 1].sequence(), true);
    ASSERT_TRUE(rest.status.ok()) << rest.status.error_message();
    EXPECT_TRUE(SameEvents(
        rest.events,
        std::vector<v1::SweepEvent>(events.begin() + middle, events.end())))
        << rest.events.size() << " events";
  }
  // Resuming at the end of a finished sweep ends at once with nothing.
  WatchResult none =
      WatchToEnd(sweeps_.get(), sweep_id, events.back().sequence(), true);
  EXPECT_TRUE(none.status.ok()) << none.status.error_message();
  EXPECT_TRUE(none.events.empty());

  // Without metrics: the same state changes, metric points left out.
  WatchResult states_only = WatchToEnd(sweeps_.get(), sweep_id, 0, false);
  ASSERT_TRUE(states_only.status.ok()) << states_only.status.error_message();
  std::vector<v1::SweepEvent> expected_states;
  for (const v1::SweepEvent& event : events) {
    if (!event.has_metric()) expected_states.push_back(event);
  }
  EXPECT_TRUE(SameEvents(states_only.events, expected_states))
      << states_only.events.size() << " vs " << expected_states.size();
}

}  // namespace
}  // namespace lora::integration
