// Submitting a sweep again to the real lorad: the same text, or the same
// sweep reordered and respelled, finds the stored sweep and creates no run;
// retry_failed requeues exactly the FAILED runs, which workers then lease
// with a fresh attempt.
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/lorad_process.h"
#include "tests/integration/test_clients.h"

namespace lora::integration {
namespace {

const char kSweep[] = R"(name: resubmit
model: roberta-tiny
task: polarity
parameters:
  lora.rank: [1, 2]
  seed: [0, 1]
fixed: {epochs: 2, lr: 5.0e-4}
max_attempts: 1
)";

// The same sweep, written differently.
const char kSweepRewritten[] = R"(# reordered, respelled
max_attempts: 1
fixed:
  lr: 0.0005
  epochs: 2
parameters:
  lora: {rank: [1, 2]}
  seed: [0, 1]
task: polarity
model: roberta-tiny
name: resubmit
)";

// A different sweep: one more seed.
const char kOtherSweep[] = R"(name: resubmit
model: roberta-tiny
task: polarity
parameters:
  lora.rank: [1, 2]
  seed: [0, 1, 2]
fixed: {epochs: 2, lr: 5.0e-4}
max_attempts: 1
)";

std::set<std::string> RunIds(const v1::SubmitSweepResponse& response) {
  std::set<std::string> ids;
  for (const v1::Run& run : response.runs()) ids.insert(run.run_id());
  return ids;
}

class ResubmissionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LoradOptions options;
    options.dir = FreshTestDir("resubmission");
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

  v1::SubmitSweepResponse Submit(const std::string& yaml,
                                 bool retry_failed = false) {
    v1::SubmitSweepResponse response;
    grpc::Status status =
        SubmitYaml(sweeps_.get(), yaml, &response, retry_failed);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  std::map<std::string, v1::Run> Runs(const std::string& sweep_id) {
    absl::StatusOr<std::vector<v1::Run>> runs =
        ListAllRuns(sweeps_.get(), sweep_id);
    EXPECT_TRUE(runs.ok()) << runs.status();
    std::map<std::string, v1::Run> by_id;
    if (runs.ok()) {
      for (const v1::Run& run : *runs) by_id[run.run_id()] = run;
    }
    return by_id;
  }

  // Leases one run and ends its attempt with `outcome`.
  std::string LeaseAndFinish(TestWorker* worker, v1::RunOutcome outcome,
                             int expected_attempt,
                             v1::RunState expected_state) {
    v1::AcquireJobResponse acquired;
    grpc::Status status = worker->Acquire(absl::Seconds(5), &acquired);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (!acquired.has_job()) {
      ADD_FAILURE() << "no job";
      return "";
    }
    const v1::Job& job = acquired.job();
    EXPECT_EQ(job.attempt(), expected_attempt);
    std::unique_ptr<ProgressStream> stream = worker->OpenProgress();
    v1::ProgressAck ack;
    EXPECT_TRUE(stream->Send(
        Batch(job, 1, {Point("val_accuracy", 10, 1, 0.5 + job.attempt())}),
        &ack));
    EXPECT_EQ(ack.acked_sequence(), 1);
    EXPECT_TRUE(stream->Close().ok());
    v1::FinishRunResponse finished;
    status = worker->Finish(job, outcome, &finished,
                            outcome == v1::RUN_OUTCOME_FAILED
                                ? "trainer exited with status 137"
                                : "");
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(finished.state(), expected_state) << job.run().run_id();
    return job.run().run_id();
  }

  std::unique_ptr<LoradProcess> lorad_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
};

TEST_F(ResubmissionTest, SameSweepAgainCreatesNoRunsAndRetryRequeuesFailed) {
  const v1::SubmitSweepResponse first = Submit(kSweep);
  ASSERT_FALSE(first.already_existed());
  ASSERT_EQ(first.runs_size(), 4);
  const std::string sweep_id = first.sweep().sweep_id();
  const std::set<std::string> ids = RunIds(first);
  ASSERT_EQ(ids.size(), 4u);

  for (const char* text : {kSweep, kSweepRewritten}) {
    SCOPED_TRACE(text);
    const v1::SubmitSweepResponse again = Submit(text);
    EXPECT_TRUE(again.already_existed());
    EXPECT_EQ(again.sweep().sweep_id(), sweep_id);
    EXPECT_EQ(RunIds(again), ids);
    EXPECT_EQ(again.requeued_runs(), 0);
    EXPECT_EQ(Runs(sweep_id).size(), 4u);
  }
  {
    v1::ListSweepsRequest request;
    v1::ListSweepsResponse sweeps;
    grpc::ClientContext context;
    PrepareContext(&context, "");
    ASSERT_TRUE(sweeps_->ListSweeps(&context, request, &sweeps).ok());
    EXPECT_EQ(sweeps.sweeps_size(), 1);
  }

  // Two runs fail for good (max_attempts 1), two succeed.
  TestWorker worker(lorad_->NewChannel(), "resubmit-worker");
  ASSERT_TRUE(worker.Register().ok());
  std::set<std::string> failed;
  for (int i = 0; i < 2; ++i) {
    failed.insert(LeaseAndFinish(&worker, v1::RUN_OUTCOME_FAILED, 1,
                                 v1::RUN_STATE_FAILED));
  }
  std::set<std::string> succeeded;
  for (int i = 0; i < 2; ++i) {
    succeeded.insert(LeaseAndFinish(&worker, v1::RUN_OUTCOME_SUCCEEDED, 1,
                                    v1::RUN_STATE_SUCCEEDED));
  }
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(
      WaitForSweepState(sweeps_.get(), sweep_id, v1::SWEEP_STATE_FAILED).ok());

  // Without retry_failed a resubmission changes nothing.
  const v1::SubmitSweepResponse plain = Submit(kSweepRewritten);
  EXPECT_TRUE(plain.already_existed());
  EXPECT_EQ(plain.requeued_runs(), 0);
  for (const std::string& id : failed) {
    EXPECT_EQ(Runs(sweep_id)[id].state(), v1::RUN_STATE_FAILED);
  }

  // With retry_failed the FAILED runs go back to the queue, and only they.
  const v1::SubmitSweepResponse retried = Submit(kSweepRewritten, true);
  EXPECT_TRUE(retried.already_existed());
  EXPECT_EQ(retried.sweep().sweep_id(), sweep_id);
  EXPECT_EQ(retried.requeued_runs(), 2);
  EXPECT_EQ(RunIds(retried), ids);
  std::map<std::string, v1::Run> runs = Runs(sweep_id);
  ASSERT_EQ(runs.size(), 4u);
  for (const std::string& id : failed) {
    EXPECT_EQ(runs[id].state(), v1::RUN_STATE_PENDING) << id;
    EXPECT_EQ(runs[id].attempt(), 2) << id;
    EXPECT_EQ(runs[id].error(), "trainer exited with status 137") << id;
  }
  for (const std::string& id : succeeded) {
    EXPECT_EQ(runs[id].state(), v1::RUN_STATE_SUCCEEDED) << id;
    EXPECT_EQ(runs[id].attempt(), 1) << id;
  }
  absl::StatusOr<v1::Sweep> sweep = GetSweep(sweeps_.get(), sweep_id);
  ASSERT_TRUE(sweep.ok());
  EXPECT_EQ(sweep->state(), v1::SWEEP_STATE_RUNNING);
  EXPECT_EQ(sweep->run_counts().at("PENDING"), 2);

  // Workers lease the requeued runs with attempt 2 and finish the sweep.
  std::set<std::string> rerun;
  for (int i = 0; i < 2; ++i) {
    rerun.insert(LeaseAndFinish(&worker, v1::RUN_OUTCOME_SUCCEEDED, 2,
                                v1::RUN_STATE_SUCCEEDED));
  }
  EXPECT_EQ(rerun, failed);
  ASSERT_TRUE(
      WaitForSweepState(sweeps_.get(), sweep_id, v1::SWEEP_STATE_SUCCEEDED)
          .ok());
  v1::AcquireJobResponse nothing;
  ASSERT_TRUE(worker.Acquire(absl::Milliseconds(300), &nothing).ok());
  EXPECT_FALSE(nothing.has_job());

  // Retrying a sweep with nothing failed requeues nothing.
  EXPECT_EQ(Submit(kSweep, true).requeued_runs(), 0);
  EXPECT_EQ(Runs(sweep_id).size(), 4u);

  // A different sweep is a new one.
  const v1::SubmitSweepResponse other = Submit(kOtherSweep);
  EXPECT_FALSE(other.already_existed());
  EXPECT_NE(other.sweep().sweep_id(), sweep_id);
  EXPECT_EQ(other.runs_size(), 6);
  EXPECT_EQ(Runs(sweep_id).size(), 4u);
}

}  // namespace
}  // namespace lora::integration
