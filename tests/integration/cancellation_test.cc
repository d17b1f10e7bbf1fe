// Cancelling on the real lorad: CancelSweep ends the queued runs at once and
// the running one is told to stop, with reason "cancelled", in its next
// ReportProgress ack and Heartbeat reply; CancelRun does the same for one
// run and leaves the others alone.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/lorad_process.h"
#include "tests/integration/test_clients.h"

namespace lora::integration {
namespace {

using ::testing::ElementsAre;

const char kSweep[] = R"(name: cancellation
model: roberta-tiny
task: polarity
parameters:
  seed: [0, 1, 2]
)";

class CancellationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LoradOptions options;
    options.dir = FreshTestDir("cancellation");
    options.heartbeat_interval = "200ms";
    options.lease_ttl = "10s";
    absl::StatusOr<std::unique_ptr<LoradProcess>> lorad =
        LoradProcess::Start(options);
    ASSERT_TRUE(lorad.ok()) << lorad.status();
    lorad_ = std::move(*lorad);
    sweeps_ = lorad_->SweepStub();
    v1::SubmitSweepResponse submitted;
    ASSERT_TRUE(SubmitYaml(sweeps_.get(), kSweep, &submitted).ok());
    ASSERT_EQ(submitted.runs_size(), 3);
    sweep_id_ = submitted.sweep().sweep_id();
    worker_ = std::make_unique<TestWorker>(lorad_->NewChannel(), "canceller");
    ASSERT_TRUE(worker_->Register().ok());
  }

  void TearDown() override {
    // Clients first: lorad's shutdown waits (up to 5 s) for connected
    // clients to go away.
    sweeps_.reset();
    worker_.reset();
    if (lorad_ != nullptr) {
      absl::Status stopped = lorad_->Stop();
      EXPECT_TRUE(stopped.ok()) << stopped;
    }
  }

  // Leases a run and moves it to RUNNING on `stream` (sequence 1).
  v1::Job Start(ProgressStream* stream) {
    v1::AcquireJobResponse acquired;
    EXPECT_TRUE(worker_->Acquire(absl::Seconds(5), &acquired).ok());
    EXPECT_TRUE(acquired.has_job());
    const v1::Job job = acquired.job();
    v1::ProgressAck ack;
    EXPECT_TRUE(
        stream->Send(Batch(job, 1, {Point("train_loss", 1, 1, 0.9)}), &ack));
    EXPECT_EQ(ack.acked_sequence(), 1);
    EXPECT_FALSE(ack.stop());
    return job;
  }

  std::map<std::string, v1::Run> Runs() {
    absl::StatusOr<std::vector<v1::Run>> runs =
        ListAllRuns(sweeps_.get(), sweep_id_);
    EXPECT_TRUE(runs.ok()) << runs.status();
    std::map<std::string, v1::Run> by_id;
    if (runs.ok()) {
      for (const v1::Run& run : *runs) by_id[run.run_id()] = run;
    }
    return by_id;
  }

  // Sends the next batch on `stream` and checks it is refused with `stop`.
  void ExpectStopOnNextAck(ProgressStream* stream, const v1::Job& job) {
    v1::ProgressAck ack;
    ASSERT_TRUE(
        stream->Send(Batch(job, 2, {Point("train_loss", 2, 1, 0.8)}), &ack));
    EXPECT_TRUE(ack.stop());
    EXPECT_EQ(ack.stop_reason(), "cancelled");
    EXPECT_EQ(ack.acked_sequence(), 1);  // batch 2 was not stored
  }

  void ExpectStopOnHeartbeat(const v1::Job& job) {
    v1::HeartbeatResponse beat;
    ASSERT_TRUE(worker_->Heartbeat({HeldLeaseOf(job, 2)}, &beat).ok());
    ASSERT_EQ(beat.stop_size(), 1);
    EXPECT_EQ(beat.stop(0).run_id(), job.run().run_id());
    EXPECT_EQ(beat.stop(0).attempt(), job.attempt());
    EXPECT_EQ(beat.stop(0).reason(), "cancelled");
  }

  std::unique_ptr<LoradProcess> lorad_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
  std::string sweep_id_;
  std::unique_ptr<TestWorker> worker_;
};

TEST_F(CancellationTest, CancelSweepEndsQueuedRunsAndStopsTheRunningOne) {
  std::unique_ptr<ProgressStream> stream = worker_->OpenProgress();
  const v1::Job job = Start(stream.get());
  ASSERT_FALSE(HasFailure());
  const std::string running_id = job.run().run_id();

  v1::CancelSweepRequest request;
  request.set_sweep_id(sweep_id_);
  v1::Sweep cancelled;
  grpc::ClientContext context;
  PrepareContext(&context, "");
  ASSERT_TRUE(sweeps_->CancelSweep(&context, request, &cancelled).ok());
  EXPECT_EQ(cancelled.state(), v1::SWEEP_STATE_CANCELLED);
  EXPECT_EQ(cancelled.run_counts().at("CANCELLED"), 3);

  // The queued runs ended at once.
  for (const auto& [id, run] : Runs()) {
    EXPECT_EQ(run.state(), v1::RUN_STATE_CANCELLED) << id;
    EXPECT_TRUE(run.has_end_time()) << id;
  }
  // The running job hears it on the stream it already had open, and on its
  // next heartbeat.
  ASSERT_NO_FATAL_FAILURE(ExpectStopOnNextAck(stream.get(), job));
  EXPECT_TRUE(stream->Close().ok());
  ASSERT_NO_FATAL_FAILURE(ExpectStopOnHeartbeat(job));
  v1::FinishRunResponse finished;
  ASSERT_TRUE(worker_->Finish(job, v1::RUN_OUTCOME_STOPPED, &finished).ok());
  EXPECT_EQ(finished.state(), v1::RUN_STATE_CANCELLED);

  // No run of the sweep is handed out any more.
  v1::AcquireJobResponse nothing;
  ASSERT_TRUE(worker_->Acquire(absl::Milliseconds(500), &nothing).ok());
  EXPECT_FALSE(nothing.has_job());

  // The event log: the running run went LEASED, RUNNING, CANCELLED; the
  // queued ones straight to CANCELLED; the stream ends with the sweep.
  WatchResult watch = WatchToEnd(sweeps_.get(), sweep_id_, 0, true);
  ASSERT_TRUE(watch.status.ok()) << watch.status.error_message();
  std::map<std::string, std::vector<v1::RunState>> states;
  int metrics = 0;
  for (const v1::SweepEvent& event : watch.events) {
    if (event.has_run_state()) {
      states[event.run_state().run_id()].push_back(event.run_state().state());
    }
    if (event.has_metric()) ++metrics;
  }
  EXPECT_EQ(metrics, 1);
  ASSERT_EQ(states.size(), 3u);
  for (const auto& [id, run_states] : states) {
    if (id == running_id) {
      EXPECT_THAT(run_states,
                  ElementsAre(v1::RUN_STATE_LEASED, v1::RUN_STATE_RUNNING,
                              v1::RUN_STATE_CANCELLED));
    } else {
      EXPECT_THAT(run_states, ElementsAre(v1::RUN_STATE_CANCELLED)) << id;
    }
  }
  ASSERT_FALSE(watch.events.empty());
  ASSERT_TRUE(watch.events.back().has_sweep_state());
  EXPECT_EQ(watch.events.back().sweep_state().state(),
            v1::SWEEP_STATE_CANCELLED);
}

TEST_F(CancellationTest, CancelRunStopsOnlyThatRun) {
  std::unique_ptr<ProgressStream> stream = worker_->OpenProgress();
  const v1::Job job = Start(stream.get());
  ASSERT_FALSE(HasFailure());

  v1::CancelRunRequest request;
  request.set_run_id(job.run().run_id());
  v1::Run cancelled;
  grpc::ClientContext context;
  PrepareContext(&context, "");
  ASSERT_TRUE(sweeps_->CancelRun(&context, request, &cancelled).ok());
  EXPECT_EQ(cancelled.state(), v1::RUN_STATE_CANCELLED);

  ASSERT_NO_FATAL_FAILURE(ExpectStopOnNextAck(stream.get(), job));
  EXPECT_TRUE(stream->Close().ok());
  ASSERT_NO_FATAL_FAILURE(ExpectStopOnHeartbeat(job));

  // The other runs are still queued and can be trained.
  int pending = 0;
  for (const auto& [id, run] : Runs()) {
    if (id == job.run().run_id()) continue;
    EXPECT_EQ(run.state(), v1::RUN_STATE_PENDING) << id;
    ++pending;
  }
  EXPECT_EQ(pending, 2);
  v1::AcquireJobResponse next;
  ASSERT_TRUE(worker_->Acquire(absl::Seconds(5), &next).ok());
  ASSERT_TRUE(next.has_job());
  EXPECT_NE(next.job().run().run_id(), job.run().run_id());
  absl::StatusOr<v1::Sweep> sweep = GetSweep(sweeps_.get(), sweep_id_);
  ASSERT_TRUE(sweep.ok());
  EXPECT_EQ(sweep->state(), v1::SWEEP_STATE_RUNNING);
}

}  // namespace
}  // namespace lora::integration
