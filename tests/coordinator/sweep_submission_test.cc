// Submitting sweeps against both stores: resubmission returns the existing
// sweep and trains nothing twice, retry_failed requeues exactly the failed
// and cancelled runs, dry runs store nothing, and the coordinator refuses
// client-side paths but accepts artifacts it holds.
#include "coordinator/sweep_submission.h"

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "coordinator/memory_run_store.h"
#include "coordinator/sqlite_run_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lora_core/model_config.h"

namespace lora::coordinator {
namespace {

using ::testing::HasSubstr;

const char kSweep[] = R"(name: rank-ablation
model: roberta-tiny
task: polarity
parameters:
  lora.rank: [1, 2, 4]
  seed: [0, 1]
fixed: {epochs: 2, lr: 5.0e-4}
max_attempts: 2
)";

// The same sweep, written differently.
const char kSweepRewritten[] = R"(# reordered, respelled
max_attempts: 2
fixed:
  lr: 0.0005
  epochs: 2
parameters:
  lora: {rank: [1, 2, 4]}
  seed: [0, 1]
task: polarity
model: roberta-tiny
name: rank-ablation
)";

class SweepSubmissionTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "memory") {
      store_ = std::make_unique<MemoryRunStore>();
    } else {
      const std::string dir =
          std::string(std::getenv("TEST_TMPDIR")) + "/" +
          ::testing::UnitTest::GetInstance()->current_test_info()->name();
      std::filesystem::remove_all(dir);
      std::filesystem::create_directories(dir);
      auto store = SqliteRunStore::Open(dir + "/runs.db");
      ASSERT_TRUE(store.ok()) << store.status();
      store_ = std::move(*store);
    }
    options_ = CoordinatorValidationOptions(
        store_.get(), 100,
        [this](const std::string& id,
               const std::string& path) -> absl::StatusOr<std::string> {
          auto file = artifact_files_.find(id + "/" + path);
          if (file == artifact_files_.end()) {
            return absl::NotFoundError("no file " + path + " in " + id);
          }
          return file->second;
        });
  }

  absl::StatusOr<SubmitResult> Submit(const std::string& text,
                                      bool retry_failed = false,
                                      bool dry_run = false) {
    SubmitRequest request;
    request.spec_yaml = text;
    request.source_name = "sweep.yaml";
    request.retry_failed = retry_failed;
    request.dry_run = dry_run;
    request.now_ms = now_ms_ += 1000;
    return SubmitSweep(store_.get(), request, options_);
  }

  // Leases a run to a worker and fails it for good.
  void FailRun(const std::string& run_id) {
    RunTransition lease;
    lease.kind = RunTransition::Kind::kLease;
    lease.now_ms = now_ms_;
    lease.worker_id = "w1";
    lease.lease_expire_ms = now_ms_ + 60000;
    ASSERT_TRUE(store_->TransitionRun(run_id, lease).ok());
    RunTransition fail;
    fail.kind = RunTransition::Kind::kFail;
    fail.now_ms = now_ms_;
    fail.worker_id = "w1";
    fail.attempt = 1;
    fail.error = "out of memory";
    fail.retryable = false;
    absl::StatusOr<RunRecord> failed = store_->TransitionRun(run_id, fail);
    ASSERT_TRUE(failed.ok()) << failed.status();
    ASSERT_EQ(failed->lifecycle.state, RunState::kFailed);
  }

  std::unique_ptr<RunStore> store_;
  sweep::SweepValidationOptions options_;
  std::map<std::string, std::string> artifact_files_;
  int64_t now_ms_ = 1'700'000'000'000;
};

TEST_P(SweepSubmissionTest, StoresEveryRunPendingWithItsCounts) {
  absl::StatusOr<SubmitResult> result = Submit(kSweep);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->already_existed);
  ASSERT_EQ(result->runs.size(), 6u);
  EXPECT_EQ(result->sweep.counts.pending, 6);
  EXPECT_EQ(result->sweep.max_attempts, 2);
  EXPECT_EQ(result->sweep.metric_name, "val_accuracy");
  EXPECT_EQ(result->sweep.spec_yaml, kSweep);
  for (const RunRecord& run : result->runs) {
    EXPECT_EQ(run.lifecycle.state, RunState::kPending);
    EXPECT_EQ(run.lifecycle.attempt, 1);
    EXPECT_EQ(run.lifecycle.max_attempts, 2);
    EXPECT_GT(run.counts.lora, 0);
    EXPECT_EQ(run.counts.trainable, run.counts.lora + run.counts.head);
  }
  EXPECT_EQ(result->runs[3].parameters_json, R"({"lora.rank":2,"seed":1})");
}

TEST_P(SweepSubmissionTest, ResubmittingTrainsNothingTwice) {
  absl::StatusOr<SubmitResult> first = Submit(kSweep);
  ASSERT_TRUE(first.ok()) << first.status();
  FailRun(first->runs[0].run_id);
  absl::StatusOr<SubmitResult> again = Submit(kSweepRewritten);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->already_existed);
  EXPECT_EQ(again->sweep.sweep_id, first->sweep.sweep_id);
  EXPECT_EQ(again->requeued_runs, 0);
  ASSERT_EQ(again->runs.size(), 6u);
  EXPECT_EQ(again->runs[0].lifecycle.state, RunState::kFailed);
  // The original text is kept; the resubmission changed nothing.
  EXPECT_EQ(again->sweep.spec_yaml, kSweep);
  absl::StatusOr<std::vector<SweepRecord>> sweeps = store_->ListSweeps("", 10);
  ASSERT_TRUE(sweeps.ok());
  EXPECT_EQ(sweeps->size(), 1u);
}

TEST_P(SweepSubmissionTest, RetryFailedRequeuesFailedAndCancelledRunsOnly) {
  absl::StatusOr<SubmitResult> first = Submit(kSweep);
  ASSERT_TRUE(first.ok()) << first.status();
  FailRun(first->runs[0].run_id);
  RunTransition cancel;
  cancel.kind = RunTransition::Kind::kCancel;
  cancel.now_ms = now_ms_;
  ASSERT_TRUE(store_->TransitionRun(first->runs[1].run_id, cancel).ok());
  absl::StatusOr<SubmitResult> retried = Submit(kSweep, /*retry_failed=*/true);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_TRUE(retried->already_existed);
  EXPECT_EQ(retried->requeued_runs, 2);
  EXPECT_EQ(retried->sweep.counts.pending, 6);
  EXPECT_EQ(retried->runs[0].lifecycle.state, RunState::kPending);
  EXPECT_EQ(retried->runs[0].lifecycle.attempt, 2);
  // A fresh budget: max_attempts more attempts from the new one on.
  EXPECT_EQ(retried->runs[0].lifecycle.max_attempts, 3);
  EXPECT_EQ(retried->runs[1].lifecycle.state, RunState::kPending);
  EXPECT_EQ(retried->runs[2].lifecycle.attempt, 1);
  // Nothing left to requeue.
  absl::StatusOr<SubmitResult> again = Submit(kSweep, /*retry_failed=*/true);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->requeued_runs, 0);
}

TEST_P(SweepSubmissionTest, DryRunStoresNothing) {
  absl::StatusOr<SubmitResult> dry =
      Submit(kSweep, /*retry_failed=*/false, /*dry_run=*/true);
  ASSERT_TRUE(dry.ok()) << dry.status();
  EXPECT_FALSE(dry->already_existed);
  EXPECT_EQ(dry->runs.size(), 6u);
  EXPECT_FALSE(store_->GetSweep(dry->sweep.sweep_id).ok());
  absl::StatusOr<SubmitResult> real = Submit(kSweep);
  ASSERT_TRUE(real.ok());
  EXPECT_EQ(real->sweep.sweep_id, dry->sweep.sweep_id);
  EXPECT_EQ(real->runs[4].run_id, dry->runs[4].run_id);
}

TEST_P(SweepSubmissionTest, InvalidSpecsStoreNothing) {
  absl::StatusOr<SubmitResult> bad = Submit(
      "name: a\nmodel: roberta-tiny\ntask: polarity\n"
      "parameters: {lora.rank: [1, 0]}\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              HasSubstr("sweep.yaml:4: lora.rank: expected an integer >= 1"));
  absl::StatusOr<std::vector<SweepRecord>> sweeps = store_->ListSweeps("", 10);
  ASSERT_TRUE(sweeps.ok());
  EXPECT_TRUE(sweeps->empty());
}

TEST_P(SweepSubmissionTest, CoordinatorAcceptsArtifactsItHoldsAndNotPaths) {
  EXPECT_THAT(Submit("name: a\nmodel: ./my-checkpoint\ntask: polarity\n")
                  .status()
                  .message(),
              HasSubstr("sweep.yaml:2: model: unknown model"));
  EXPECT_THAT(Submit("name: a\nmodel: roberta-tiny\ntask: sst2\n"
                     "data_dir: /home/me/SST-2\n")
                  .status()
                  .message(),
              HasSubstr("sweep.yaml:4: data_dir: \"/home/me/SST-2\" is a path "
                        "on the client"));
  const std::string model_id = "sha256:" + std::string(64, 'b');
  const std::string data_id = "sha256:" + std::string(64, 'd');
  EXPECT_THAT(Submit("name: a\nmodel: " + model_id + "\ntask: polarity\n")
                  .status()
                  .message(),
              HasSubstr("sweep.yaml:2: model: unknown model"));
  ArtifactRecord model;
  model.artifact_id = model_id;
  model.kind = 2;
  model.name = "my-checkpoint";
  model.files = {{"config.json", 10, std::string(64, '0')}};
  model.size_bytes = 10;
  ASSERT_TRUE(store_->PutArtifact(model).ok());
  ArtifactRecord data = model;
  data.artifact_id = data_id;
  data.kind = 1;
  data.name = "SST-2";
  ASSERT_TRUE(store_->PutArtifact(data).ok());
  absl::StatusOr<core::ModelConfig> tiny =
      core::BuiltinModelConfig("roberta-tiny");
  ASSERT_TRUE(tiny.ok());
  artifact_files_[model_id + "/config.json"] = core::ModelConfigToJson(*tiny);
  absl::StatusOr<SubmitResult> result =
      Submit("name: a\nmodel: " + model_id +
             "\ntask: sst2\ndata_dir: " + data_id + "\n");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->runs[0].config_yaml, HasSubstr(model_id));
  EXPECT_THAT(result->runs[0].config_yaml, HasSubstr(data_id));
  // A dataset artifact is not a model.
  EXPECT_THAT(Submit("name: b\nmodel: " + data_id + "\ntask: polarity\n")
                  .status()
                  .message(),
              HasSubstr("is not a base checkpoint artifact"));
}

INSTANTIATE_TEST_SUITE_P(Stores, SweepSubmissionTest,
                         ::testing::Values("memory", "sqlite"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace lora::coordinator
