// The coordinator's behaviour without gRPC, on a fake clock: leasing by the
// scheduler's rules, lease renewal and expiry with retries and checkpoints,
// stop orders for cancelled runs and lost leases, worker re-registration,
// idempotent finishes, and wake-ups for long polls.
#include "coordinator/coordinator.h"

#include <memory>
#include <string>

#include "coordinator/memory_run_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_clock.h"

namespace lora::coordinator {
namespace {

using ::testing::HasSubstr;

const char kSweep[] = R"(name: leases
model: roberta-tiny
task: polarity
parameters: {lora.rank: [1, 2, 4]}
max_attempts: 2
)";

class CoordinatorTest : public ::testing::Test {
 protected:
  CoordinatorTest()
      : clock_(absl::FromUnixMillis(1'700'000'000'000)),
        coordinator_(&store_, &clock_, Options(), NoArtifacts()) {}

  static CoordinatorOptions Options() {
    CoordinatorOptions options;
    options.timing = {1000, 5000};
    options.stall_after_ms = 60000;
    return options;
  }

  static std::function<absl::StatusOr<std::string>(const std::string&,
                                                   const std::string&)>
  NoArtifacts() {
    return [](const std::string& id, const std::string&) {
      return absl::NotFoundError(id);
    };
  }

  std::string Register(const std::string& name, int slots = 1) {
    v1::WorkerCapabilities capabilities;
    capabilities.set_device(v1::DEVICE_KIND_CPU);
    capabilities.set_max_concurrent_jobs(slots);
    absl::StatusOr<WorkerState> worker =
        coordinator_.RegisterWorker(name, capabilities);
    EXPECT_TRUE(worker.ok()) << worker.status();
    return worker.ok() ? worker->record.worker_id : "";
  }

  SubmitResult Submit(const std::string& text = kSweep) {
    SubmitRequest request;
    request.spec_yaml = text;
    absl::StatusOr<SubmitResult> result = coordinator_.Submit(request);
    EXPECT_TRUE(result.ok()) << result.status();
    return *result;
  }

  LeasedJob Acquire(const std::string& worker_id) {
    absl::StatusOr<std::optional<LeasedJob>> job =
        coordinator_.TryAcquireJob(worker_id);
    EXPECT_TRUE(job.ok()) << job.status();
    EXPECT_TRUE(job->has_value());
    return **job;
  }

  ProgressResult Report(const LeasedJob& job, int64_t step,
                        const std::string& checkpoint = "") {
    ProgressReport report;
    report.run_id = job.run.run_id;
    report.attempt = job.run.lifecycle.attempt;
    report.lease_id = job.lease_id;
    report.points = {{"train_loss", step, 1, 0.5, 0}};
    report.checkpoint_artifact_id = checkpoint;
    absl::StatusOr<ProgressResult> result = coordinator_.ReportProgress(report);
    EXPECT_TRUE(result.ok()) << result.status();
    return *result;
  }

  MemoryRunStore store_;
  FakeClock clock_;
  Coordinator coordinator_;
};

TEST_F(CoordinatorTest, LeasesRunsInIndexOrderOnePerCall) {
  SubmitResult sweep = Submit();
  const std::string worker = Register("w");
  LeasedJob first = Acquire(worker);
  LeasedJob second = Acquire(worker);
  EXPECT_EQ(first.run.run_id, sweep.runs[0].run_id);
  EXPECT_EQ(second.run.run_id, sweep.runs[1].run_id);
  EXPECT_EQ(first.run.lifecycle.state, RunState::kLeased);
  EXPECT_EQ(first.run.lifecycle.lease_expire_ms, coordinator_.NowMs() + 5000);
  EXPECT_EQ(first.lease_id, Coordinator::LeaseId(first.run.run_id, 1, worker));
  EXPECT_EQ(first.metric_name, "val_accuracy");
  EXPECT_TRUE(first.metric_maximize);
}

TEST_F(CoordinatorTest, UnknownWorkersMustRegister) {
  Submit();
  EXPECT_EQ(coordinator_.TryAcquireJob("w-nobody").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(coordinator_.Heartbeat("w-nobody", {}, 1).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(CoordinatorTest,
       ProgressRenewsTheLeaseAndExpiryRetriesFromTheCheckpoint) {
  Submit();
  const std::string a = Register("a");
  LeasedJob job = Acquire(a);
  clock_.Advance(absl::Seconds(4));
  ProgressResult progress = Report(job, 10, "sha256:" + std::string(64, 'c'));
  EXPECT_TRUE(progress.committed);
  EXPECT_FALSE(progress.stop);
  EXPECT_EQ(progress.lease_expire_ms, coordinator_.NowMs() + 5000);
  // Renewed: not expired 4 s later, expired after 5 s of silence.
  clock_.Advance(absl::Seconds(4));
  EXPECT_EQ(coordinator_.ExpireLeases(), 0);
  clock_.Advance(absl::Seconds(1));
  const int64_t changes = coordinator_.ChangeCount();
  EXPECT_EQ(coordinator_.ExpireLeases(), 1);
  EXPECT_NE(coordinator_.ChangeCount(), changes);  // long polls wake up
  absl::StatusOr<RunRecord> run = store_.GetRun(job.run.run_id);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->lifecycle.state, RunState::kPending);
  EXPECT_EQ(run->lifecycle.attempt, 2);
  EXPECT_THAT(run->lifecycle.error, HasSubstr("expired"));
  // The resumed attempt goes first and carries the checkpoint.
  const std::string b = Register("b");
  LeasedJob again = Acquire(b);
  EXPECT_EQ(again.run.run_id, job.run.run_id);
  EXPECT_EQ(again.run.lifecycle.attempt, 2);
  EXPECT_EQ(again.run.lifecycle.checkpoint_artifact_id,
            "sha256:" + std::string(64, 'c'));
  // The old holder is told its lease is lost, and cannot finish the run.
  ProgressResult stale = Report(job, 11);
  EXPECT_TRUE(stale.stop);
  EXPECT_EQ(stale.stop_reason, "lease_lost");
  FinishReport finish{
      job.run.run_id, 1, job.lease_id, AttemptOutcome::kSucceeded, "", ""};
  // Its success is refused (the run is someone else's now) and changes
  // nothing.
  EXPECT_EQ(coordinator_.FinishRun(finish).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_.GetRun(job.run.run_id)->lifecycle.state, RunState::kLeased);
  absl::StatusOr<HeartbeatResult> beat =
      coordinator_.Heartbeat(a, {{job.run.run_id, 1, job.lease_id, 11}}, 1);
  ASSERT_TRUE(beat.ok());
  ASSERT_EQ(beat->stop.size(), 1u);
  EXPECT_EQ(beat->stop[0].reason, "lease_lost");
}

TEST_F(CoordinatorTest, AttemptsRunOutThenTheRunFails) {
  Submit();
  const std::string worker = Register("w");
  LeasedJob job = Acquire(worker);
  FinishReport fail{job.run.run_id,
                    1,
                    job.lease_id,
                    AttemptOutcome::kFailed,
                    "child exited with status 1",
                    ""};
  absl::StatusOr<RunRecord> first = coordinator_.FinishRun(fail);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->lifecycle.state, RunState::kPending);
  // Repeating the report of the same attempt changes nothing.
  absl::StatusOr<RunRecord> repeated = coordinator_.FinishRun(fail);
  ASSERT_TRUE(repeated.ok());
  EXPECT_EQ(repeated->lifecycle.attempt, 2);
  LeasedJob second = Acquire(worker);
  ASSERT_EQ(second.run.run_id, job.run.run_id);
  FinishReport fail_again{job.run.run_id,  2,
                          second.lease_id, AttemptOutcome::kFailed,
                          "out of memory", ""};
  absl::StatusOr<RunRecord> last = coordinator_.FinishRun(fail_again);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->lifecycle.state, RunState::kFailed);
  EXPECT_EQ(last->lifecycle.error, "out of memory");
}

TEST_F(CoordinatorTest, CancellationStopsRunningJobsAndEndsQueuedOnes) {
  SubmitResult sweep = Submit();
  const std::string worker = Register("w");
  LeasedJob job = Acquire(worker);
  Report(job, 1);
  absl::StatusOr<SweepRecord> cancelled =
      coordinator_.CancelSweep(sweep.sweep.sweep_id);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->counts.cancelled, 3);
  ProgressResult progress = Report(job, 2);
  EXPECT_TRUE(progress.stop);
  EXPECT_EQ(progress.stop_reason, "cancelled");
  absl::StatusOr<HeartbeatResult> beat =
      coordinator_.Heartbeat(worker, {{job.run.run_id, 1, job.lease_id, 2}}, 0);
  ASSERT_TRUE(beat.ok());
  ASSERT_EQ(beat->stop.size(), 1u);
  EXPECT_EQ(beat->stop[0].reason, "cancelled");
  absl::StatusOr<std::optional<LeasedJob>> none =
      coordinator_.TryAcquireJob(worker);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  // The stopped worker's report changes nothing.
  FinishReport stopped{job.run.run_id,           1,  job.lease_id,
                       AttemptOutcome::kStopped, "", ""};
  absl::StatusOr<RunRecord> after = coordinator_.FinishRun(stopped);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->lifecycle.state, RunState::kCancelled);
}

TEST_F(CoordinatorTest, HeartbeatsRenewLeasesAndWorkersKeepTheirIds) {
  Submit();
  const std::string worker = Register("w");
  EXPECT_EQ(Register("w"), worker);  // derived from the name
  LeasedJob job = Acquire(worker);
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(3));
    absl::StatusOr<HeartbeatResult> beat = coordinator_.Heartbeat(
        worker, {{job.run.run_id, 1, job.lease_id, 0}}, 0);
    ASSERT_TRUE(beat.ok());
    EXPECT_TRUE(beat->stop.empty());
    EXPECT_EQ(coordinator_.ExpireLeases(), 0);
  }
  // A worker that registers again was restarted: its jobs go back.
  Register("w");
  absl::StatusOr<RunRecord> run = store_.GetRun(job.run.run_id);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->lifecycle.state, RunState::kPending);
  EXPECT_EQ(run->lifecycle.attempt, 2);
  EXPECT_THAT(run->lifecycle.error, HasSubstr("restarted"));
}

TEST_F(CoordinatorTest, WorkersAreReloadedFromTheStore) {
  Submit();
  const std::string worker = Register("w");
  LeasedJob job = Acquire(worker);
  // A new coordinator on the same store (a restarted lorad) knows the
  // worker and its lease without a new registration.
  Coordinator restarted(&store_, &clock_, Options(), NoArtifacts());
  absl::StatusOr<HeartbeatResult> beat =
      restarted.Heartbeat(worker, {{job.run.run_id, 1, job.lease_id, 0}}, 0);
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_TRUE(beat->stop.empty());
  absl::StatusOr<std::optional<LeasedJob>> next =
      restarted.TryAcquireJob(worker);
  ASSERT_TRUE(next.ok());
  EXPECT_TRUE(next->has_value());
}

TEST_F(CoordinatorTest, StalledRunsAreCountedPerSweep) {
  SubmitResult sweep = Submit();
  const std::string worker = Register("w", 2);
  LeasedJob a = Acquire(worker);
  LeasedJob b = Acquire(worker);
  Report(a, 5);
  Report(b, 5);
  EXPECT_TRUE(coordinator_.StalledBySweep().empty());
  clock_.Advance(absl::Seconds(30));
  Report(a, 6);  // a advances, b does not
  clock_.Advance(absl::Seconds(30));
  std::map<std::string, int64_t> stalled = coordinator_.StalledBySweep();
  ASSERT_EQ(stalled.size(), 1u);
  EXPECT_EQ(stalled[sweep.sweep.sweep_id], 1);
}

TEST_F(CoordinatorTest, WaitForChangeReturnsOnChangeOrDeadline) {
  const int64_t seen = coordinator_.ChangeCount();
  const absl::Time start = absl::Now();
  coordinator_.WaitForChange(seen, absl::Now() + absl::Milliseconds(50));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(40));
  Submit();
  coordinator_.WaitForChange(seen, absl::InfiniteFuture());  // returns at once
  coordinator_.Shutdown();
  EXPECT_TRUE(coordinator_.shutting_down());
  coordinator_.WaitForChange(coordinator_.ChangeCount(),
                             absl::InfiniteFuture());
}

}  // namespace
}  // namespace lora::coordinator
