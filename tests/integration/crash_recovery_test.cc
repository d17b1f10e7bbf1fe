// kill -9 of the real lorad in the middle of a sweep, then a restart on the
// same SQLite file and artifact root: no run is lost, every acknowledged
// metric point is there exactly once (unacknowledged batches resent after
// the restart are stored once), nothing is duplicated in the event log, and
// the workers (same names, so same ids) carry on with the leases they held.
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/lorad_process.h"
#include "tests/integration/test_clients.h"

namespace lora::integration {
namespace {

using ::testing::ElementsAre;

const char kSweep[] = R"(name: crash-recovery
model: roberta-tiny
task: polarity
parameters:
  lora.rank: [1, 2]
  seed: [0, 1, 2]
fixed: {epochs: 3}
)";

constexpr int kRuns = 6;
constexpr int kEpochs = 3;

double Accuracy(int rank, int seed, int epoch) {
  return 0.5 + 0.01 * rank + 0.001 * seed + 0.02 * epoch;
}

// The batch for one epoch of a run: two train_loss points and the epoch's
// val_accuracy.
v1::ProgressBatch EpochBatch(const v1::Job& job, int epoch) {
  const int rank = job.run().config().lora().rank();
  const int seed = static_cast<int>(job.run().config().seed());
  return Batch(
      job, epoch,
      {Point("train_loss", 2 * epoch - 1, epoch, 1.0 / epoch),
       Point("train_loss", 2 * epoch, epoch, 0.9 / epoch),
       Point("val_accuracy", 2 * epoch, epoch, Accuracy(rank, seed, epoch))});
}

using PointKey = std::tuple<std::string, std::string, int64_t>;

class CrashRecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.dir = FreshTestDir("crash_recovery");
    // Leases outlive the restart (it takes well under a second), so the
    // workers keep them; heartbeats stay frequent.
    options_.heartbeat_interval = "500ms";
    options_.lease_ttl = "10s";
    StartLorad();
  }

  void StartLorad() {
    absl::StatusOr<std::unique_ptr<LoradProcess>> lorad =
        LoradProcess::Start(options_);
    ASSERT_TRUE(lorad.ok()) << lorad.status();
    lorad_ = std::move(*lorad);
    sweeps_ = lorad_->SweepStub();
  }

  void TearDown() override {
    // Clients first: lorad's shutdown waits (up to 5 s) for connected
    // clients to go away.
    sweeps_.reset();
    if (lorad_ != nullptr && lorad_->running()) {
      absl::Status stopped = lorad_->Stop();
      EXPECT_TRUE(stopped.ok()) << stopped;
    }
  }

  // Leases one run to `worker`.
  v1::Job Lease(TestWorker* worker) {
    v1::AcquireJobResponse acquired;
    grpc::Status status = worker->Acquire(absl::Seconds(5), &acquired);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(acquired.has_job());
    EXPECT_EQ(acquired.job().attempt(), 1);
    return acquired.job();
  }

  // Sends the epochs [first, last] of a job on one stream, checking acks.
  void SendEpochs(TestWorker* worker, const v1::Job& job, int first, int last) {
    std::unique_ptr<ProgressStream> stream = worker->OpenProgress();
    for (int epoch = first; epoch <= last; ++epoch) {
      v1::ProgressAck ack;
      ASSERT_TRUE(stream->Send(EpochBatch(job, epoch), &ack))
          << stream->Close().error_message();
      ASSERT_EQ(ack.acked_sequence(), epoch);
      ASSERT_FALSE(ack.stop()) << ack.stop_reason();
      Acknowledge(job, epoch);
    }
    ASSERT_TRUE(stream->Close().ok());
  }

  void Acknowledge(const v1::Job& job, int epoch) {
    const v1::ProgressBatch batch = EpochBatch(job, epoch);
    for (const v1::MetricPoint& point : batch.points()) {
      acked_[{job.run().run_id(), point.name(), point.step()}] = point.value();
    }
  }

  void Finish(TestWorker* worker, const v1::Job& job) {
    v1::FinishRunResponse reply;
    grpc::Status status =
        worker->Finish(job, v1::RUN_OUTCOME_SUCCEEDED, &reply);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(reply.state(), v1::RUN_STATE_SUCCEEDED);
  }

  LoradOptions options_;
  std::unique_ptr<LoradProcess> lorad_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
  std::map<PointKey, double> acked_;
};

TEST_F(CrashRecoveryTest, KilledDaemonRestartsWithoutLosingOrDuplicating) {
  v1::SubmitSweepResponse submitted;
  grpc::Status status = SubmitYaml(sweeps_.get(), kSweep, &submitted);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(submitted.runs_size(), kRuns);
  const std::string sweep_id = submitted.sweep().sweep_id();
  std::set<std::string> run_ids;
  for (const v1::Run& run : submitted.runs()) run_ids.insert(run.run_id());

  TestWorker w1(lorad_->NewChannel(), "crash-w1");
  TestWorker w2(lorad_->NewChannel(), "crash-w2");
  ASSERT_TRUE(w1.Register().ok());
  ASSERT_TRUE(w2.Register().ok());
  const std::string w1_id = w1.worker_id();
  const std::string w2_id = w2.worker_id();

  // A watcher that the crash will cut off.
  WatchResult cut_off;
  std::thread watch(
      [&] { cut_off = WatchToEnd(sweeps_.get(), sweep_id, 0, true); });

  // w1 completes one run, then holds a second; w2 holds two. Two runs stay
  // queued.
  const v1::Job done = Lease(&w1);
  ASSERT_NO_FATAL_FAILURE(SendEpochs(&w1, done, 1, kEpochs));
  ASSERT_NO_FATAL_FAILURE(Finish(&w1, done));
  const std::vector<std::pair<TestWorker*, v1::Job>> held = {
      {&w1, Lease(&w1)}, {&w2, Lease(&w2)}, {&w2, Lease(&w2)}};
  ASSERT_FALSE(::testing::Test::HasFailure());
  for (const auto& [worker, job] : held) {
    ASSERT_NO_FATAL_FAILURE(SendEpochs(worker, job, 1, 2));
  }
  // Epoch 3 of every held run is in flight, unacknowledged, when lorad dies.
  std::vector<std::unique_ptr<ProgressStream>> in_flight;
  for (const auto& [worker, job] : held) {
    in_flight.push_back(worker->OpenProgress());
    ASSERT_TRUE(in_flight.back()->Write(EpochBatch(job, 3)));
  }
  absl::StatusOr<std::vector<v1::Run>> before =
      ListAllRuns(sweeps_.get(), sweep_id);
  ASSERT_TRUE(before.ok()) << before.status();

  lorad_->Kill();
  for (auto& stream : in_flight) EXPECT_FALSE(stream->Close().ok());
  in_flight.clear();
  watch.join();
  EXPECT_FALSE(cut_off.status.ok());
  ASSERT_FALSE(cut_off.events.empty());

  // --- Restart on the same database and artifact root. ---
  ASSERT_NO_FATAL_FAILURE(StartLorad());
  absl::StatusOr<std::vector<v1::Run>> after =
      ListAllRuns(sweeps_.get(), sweep_id);
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_EQ(after->size(), static_cast<size_t>(kRuns));
  std::map<std::string, v1::Run> by_id;
  for (const v1::Run& run : *after) by_id[run.run_id()] = run;
  for (const std::string& id : run_ids) ASSERT_TRUE(by_id.count(id)) << id;
  EXPECT_EQ(by_id[done.run().run_id()].state(), v1::RUN_STATE_SUCCEEDED);
  for (const auto& [worker, job] : held) {
    const v1::Run& run = by_id[job.run().run_id()];
    EXPECT_EQ(run.state(), v1::RUN_STATE_RUNNING) << run.run_id();
    EXPECT_EQ(run.attempt(), 1);
    EXPECT_EQ(run.worker_id(), worker->worker_id());
  }
  int pending = 0;
  for (const v1::Run& run : *after) {
    if (run.state() == v1::RUN_STATE_PENDING) ++pending;
  }
  EXPECT_EQ(pending, 2);
  // The acknowledged epochs survived (exactly once is checked on the event
  // log below); epoch 3 may or may not have been committed before the kill.
  for (const auto& [worker, job] : held) {
    absl::StatusOr<v1::Run> run = GetRun(sweeps_.get(), job.run().run_id());
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_THAT(run->step(), ::testing::AnyOf(4, 6)) << run->run_id();
    EXPECT_EQ(run->latest_metrics_size(), 2) << run->run_id();
  }

  // The workers carry on without registering again: same ids, leases
  // still theirs.
  w1.Reconnect(lorad_->NewChannel());
  w2.Reconnect(lorad_->NewChannel());
  {
    v1::ListWorkersRequest request;
    request.set_include_down(true);
    v1::ListWorkersResponse workers;
    grpc::ClientContext context;
    PrepareContext(&context, "");
    ASSERT_TRUE(sweeps_->ListWorkers(&context, request, &workers).ok());
    std::set<std::string> ids;
    for (const v1::Worker& worker : workers.workers()) {
      ids.insert(worker.worker_id());
    }
    EXPECT_EQ(ids, (std::set<std::string>{w1_id, w2_id}));
  }
  for (TestWorker* worker : {&w1, &w2}) {
    std::vector<v1::HeldLease> leases;
    for (const auto& [owner, job] : held) {
      if (owner == worker) leases.push_back(HeldLeaseOf(job, 4));
    }
    v1::HeartbeatResponse beat;
    status = worker->Heartbeat(leases, &beat);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(beat.stop_size(), 0) << beat.DebugString();
    EXPECT_EQ(worker->worker_id(), worker == &w1 ? w1_id : w2_id);
  }

  // Resend what was not acknowledged (epoch 3), and epoch 2 once more as a
  // worker unsure of its acks would: both are stored once.
  for (const auto& [worker, job] : held) {
    std::unique_ptr<ProgressStream> stream = worker->OpenProgress();
    for (int epoch : {2, 3}) {
      v1::ProgressAck ack;
      ASSERT_TRUE(stream->Send(EpochBatch(job, epoch), &ack))
          << stream->Close().error_message();
      EXPECT_EQ(ack.acked_sequence(), epoch);
      EXPECT_FALSE(ack.stop()) << ack.stop_reason();
      Acknowledge(job, epoch);
    }
    ASSERT_TRUE(stream->Close().ok());
    ASSERT_NO_FATAL_FAILURE(Finish(worker, job));
  }
  // The two queued runs were not lost either.
  for (int i = 0; i < 2; ++i) {
    const v1::Job job = Lease(&w2);
    ASSERT_FALSE(::testing::Test::HasFailure());
    EXPECT_EQ(by_id[job.run().run_id()].state(), v1::RUN_STATE_PENDING);
    ASSERT_NO_FATAL_FAILURE(SendEpochs(&w2, job, 1, kEpochs));
    ASSERT_NO_FATAL_FAILURE(Finish(&w2, job));
  }
  ASSERT_TRUE(
      WaitForSweepState(sweeps_.get(), sweep_id, v1::SWEEP_STATE_SUCCEEDED)
          .ok());

  // --- Nothing lost, nothing twice. ---
  WatchResult replay = WatchToEnd(sweeps_.get(), sweep_id, 0, true);
  ASSERT_TRUE(replay.status.ok()) << replay.status.error_message();
  const std::vector<v1::SweepEvent>& events = replay.events;
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].sequence(), static_cast<int64_t>(i + 1));
  }
  std::map<PointKey, double> stored;
  std::map<std::string, std::vector<v1::RunState>> states;
  for (const v1::SweepEvent& event : events) {
    if (event.has_metric()) {
      const v1::RunMetric& metric = event.metric();
      EXPECT_TRUE(stored
                      .emplace(PointKey{metric.run_id(), metric.point().name(),
                                        metric.point().step()},
                               metric.point().value())
                      .second)
          << "stored twice: " << metric.run_id() << " " << metric.point().name()
          << "@" << metric.point().step();
      EXPECT_EQ(metric.attempt(), 1);
    } else if (event.has_run_state()) {
      states[event.run_state().run_id()].push_back(event.run_state().state());
    }
  }
  EXPECT_EQ(stored, acked_);
  EXPECT_EQ(stored.size(), static_cast<size_t>(kRuns * kEpochs * 3));
  ASSERT_EQ(states.size(), static_cast<size_t>(kRuns));
  for (const auto& [run_id, run_states] : states) {
    EXPECT_THAT(run_states,
                ElementsAre(v1::RUN_STATE_LEASED, v1::RUN_STATE_RUNNING,
                            v1::RUN_STATE_SUCCEEDED))
        << run_id;
  }
  // What the cut-off watcher saw is the start of the log; resuming after
  // its last event yields exactly the rest.
  ASSERT_LE(cut_off.events.size(), events.size());
  for (size_t i = 0; i < cut_off.events.size(); ++i) {
    EXPECT_EQ(cut_off.events[i].SerializeAsString(),
              events[i].SerializeAsString())
        << "event #" << i;
  }
  WatchResult resumed = WatchToEnd(sweeps_.get(), sweep_id,
                                   cut_off.events.back().sequence(), true);
  ASSERT_TRUE(resumed.status.ok()) << resumed.status.error_message();
  EXPECT_EQ(cut_off.events.size() + resumed.events.size(), events.size());

  // The per-run views agree with the log.
  v1::GetResultsRequest request;
  request.set_sweep_id(sweep_id);
  v1::GetResultsResponse results;
  grpc::ClientContext context;
  PrepareContext(&context, "");
  ASSERT_TRUE(sweeps_->GetResults(&context, request, &results).ok());
  ASSERT_EQ(results.runs_size(), kRuns);
  for (const v1::RunResult& result : results.runs()) {
    SCOPED_TRACE(result.run_id());
    EXPECT_EQ(result.state(), v1::RUN_STATE_SUCCEEDED);
    ASSERT_EQ(result.metric_curve_size(), kEpochs);
    const int rank =
        static_cast<int>(result.parameters().at("lora.rank").number_value());
    const int seed =
        static_cast<int>(result.parameters().at("seed").number_value());
    for (int epoch = 1; epoch <= kEpochs; ++epoch) {
      EXPECT_DOUBLE_EQ(result.metric_curve(epoch - 1).value(),
                       Accuracy(rank, seed, epoch));
    }
    EXPECT_DOUBLE_EQ(result.best_metric(), Accuracy(rank, seed, kEpochs));
    absl::StatusOr<v1::Run> run = GetRun(sweeps_.get(), result.run_id());
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_EQ(run->step(), 2 * kEpochs);
    EXPECT_DOUBLE_EQ(run->latest_metrics().at("train_loss"), 0.9 / kEpochs);
    EXPECT_DOUBLE_EQ(run->latest_metrics().at("val_accuracy"),
                     Accuracy(rank, seed, kEpochs));
  }
}

}  // namespace
}  // namespace lora::integration
