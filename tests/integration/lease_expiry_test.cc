// A worker that goes silent loses its lease on the real lorad: the run goes
// back to the queue with attempt 2, another worker leases it and resumes from
// the checkpoint the first one uploaded (downloaded byte for byte), and the
// first worker, when it speaks again, is told its lease is gone.
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/lorad_process.h"
#include "tests/integration/test_clients.h"

namespace lora::integration {
namespace {

using ::testing::HasSubstr;

const char kSweep[] = R"(name: lease-expiry
model: roberta-tiny
task: polarity
parameters:
  seed: [7]
fixed: {epochs: 2}
max_attempts: 3
)";

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary);
  file << bytes;
  ASSERT_TRUE(file.good()) << path;
}

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 random(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(random() & 0xff);
  return bytes;
}

class LeaseExpiryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshTestDir("lease_expiry");
    LoradOptions options;
    options.dir = dir_ + "/lorad";
    options.heartbeat_interval = "200ms";
    options.lease_ttl = "1s";
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

  std::string dir_;
  std::unique_ptr<LoradProcess> lorad_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
};

TEST_F(LeaseExpiryTest, SilentWorkerLosesRunToAnotherThatResumesCheckpoint) {
  v1::SubmitSweepResponse submitted;
  grpc::Status status = SubmitYaml(sweeps_.get(), kSweep, &submitted);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(submitted.runs_size(), 1);
  const std::string run_id = submitted.runs(0).run_id();

  // Worker A leases the run and trains an epoch.
  TestWorker a(lorad_->NewChannel(), "worker-a");
  ASSERT_TRUE(a.Register().ok());
  v1::AcquireJobResponse acquired;
  ASSERT_TRUE(a.Acquire(absl::Seconds(5), &acquired).ok());
  ASSERT_TRUE(acquired.has_job());
  const v1::Job job_a = acquired.job();
  ASSERT_EQ(job_a.run().run_id(), run_id);
  EXPECT_EQ(job_a.attempt(), 1);
  EXPECT_EQ(job_a.resume_checkpoint_artifact_id(), "");
  EXPECT_EQ(job_a.run().worker_id(), a.worker_id());
  // A heartbeats while it works, as a real worker does.
  auto a_alive = std::make_unique<Heartbeater>(
      &a, std::vector<v1::HeldLease>{HeldLeaseOf(job_a)});

  // Its checkpoint: a small folder, one file larger than a chunk.
  const std::string checkpoint = dir_ + "/checkpoint-step-4";
  std::filesystem::create_directories(checkpoint + "/optimizer");
  const std::map<std::string, std::string> files = {
      {"adapter_model.safetensors", RandomBytes(1536 * 1024 + 17, 1)},
      {"optimizer/state.bin", RandomBytes(4096, 2)},
      {"trainer_state.json", R"({"global_step": 4, "epoch": 1})"},
  };
  for (const auto& [path, bytes] : files) {
    WriteFile(checkpoint + "/" + path, bytes);
  }
  absl::StatusOr<v1::UploadArtifactResponse> uploaded = a.UploadFolder(
      checkpoint, v1::ARTIFACT_KIND_TRAINING_CHECKPOINT, run_id, 512 * 1024);
  ASSERT_TRUE(uploaded.ok()) << uploaded.status();
  const std::string checkpoint_id = uploaded->artifact().artifact_id();
  EXPECT_FALSE(uploaded->already_existed());
  EXPECT_EQ(uploaded->artifact().files_size(), 3);
  EXPECT_EQ(uploaded->artifact().run_id(), run_id);
  EXPECT_EQ(uploaded->artifact().kind(), v1::ARTIFACT_KIND_TRAINING_CHECKPOINT);

  int64_t sequence = 0;
  {
    std::unique_ptr<ProgressStream> stream = a.OpenProgress();
    v1::ProgressBatch batch =
        Batch(job_a, ++sequence,
              {Point("train_loss", 2, 1, 0.9), Point("train_loss", 4, 1, 0.7),
               Point("val_accuracy", 4, 1, 0.61)});
    batch.set_checkpoint_artifact_id(checkpoint_id);
    v1::ProgressAck ack;
    ASSERT_TRUE(stream->Send(batch, &ack));
    EXPECT_EQ(ack.acked_sequence(), 1);
    EXPECT_FALSE(ack.stop());
    ASSERT_TRUE(stream->Close().ok());
  }
  absl::StatusOr<v1::Run> running = GetRun(sweeps_.get(), run_id);
  ASSERT_TRUE(running.ok()) << running.status();
  EXPECT_EQ(running->state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(running->checkpoint_artifact_id(), checkpoint_id);

  // A now goes silent. B asks for work and gets the run once A's lease
  // (1 s TTL) has expired.
  a_alive->Stop();
  EXPECT_EQ(a_alive->error(), "");
  const absl::Time silent_since = absl::Now();
  TestWorker b(lorad_->NewChannel(), "worker-b");
  ASSERT_TRUE(b.Register().ok());
  v1::AcquireJobResponse reacquired;
  status = b.Acquire(absl::Seconds(15), &reacquired);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(reacquired.has_job()) << "the lease never expired";
  EXPECT_GE(absl::Now() - silent_since, absl::Milliseconds(700));
  const v1::Job job_b = reacquired.job();
  EXPECT_EQ(job_b.run().run_id(), run_id);
  EXPECT_EQ(job_b.attempt(), 2);
  EXPECT_EQ(job_b.run().attempt(), 2);
  EXPECT_EQ(job_b.run().worker_id(), b.worker_id());
  EXPECT_EQ(job_b.resume_checkpoint_artifact_id(), checkpoint_id);
  EXPECT_NE(job_b.lease_id(), job_a.lease_id());
  EXPECT_THAT(job_b.run().error(), HasSubstr("expired"));
  Heartbeater b_alive(&b, {HeldLeaseOf(job_b)});

  // B downloads the checkpoint byte for byte.
  absl::StatusOr<DownloadedArtifact> downloaded =
      b.Download(job_b.resume_checkpoint_artifact_id());
  ASSERT_TRUE(downloaded.ok()) << downloaded.status();
  EXPECT_EQ(downloaded->manifest.artifact_id(), checkpoint_id);
  ASSERT_EQ(downloaded->manifest.files_size(), 3);
  ASSERT_EQ(downloaded->files.size(), files.size());
  for (const auto& [path, bytes] : files) {
    ASSERT_TRUE(downloaded->files.count(path)) << path;
    EXPECT_TRUE(downloaded->files.at(path) == bytes)
        << path << ": " << downloaded->files.at(path).size() << " bytes, want "
        << bytes.size();
  }

  // A wakes up: its progress is refused with lease_lost, and nothing it
  // sends is stored.
  {
    std::unique_ptr<ProgressStream> stream = a.OpenProgress();
    v1::ProgressAck ack;
    ASSERT_TRUE(stream->Send(
        Batch(job_a, ++sequence, {Point("train_loss", 6, 2, 0.5)}), &ack));
    EXPECT_TRUE(ack.stop());
    EXPECT_EQ(ack.stop_reason(), "lease_lost");
    EXPECT_EQ(ack.acked_sequence(), 0);
    EXPECT_TRUE(stream->Close().ok());
  }
  v1::HeartbeatResponse beat;
  ASSERT_TRUE(a.Heartbeat({HeldLeaseOf(job_a, 4)}, &beat).ok());
  ASSERT_EQ(beat.stop_size(), 1);
  EXPECT_EQ(beat.stop(0).run_id(), run_id);
  EXPECT_EQ(beat.stop(0).attempt(), 1);
  EXPECT_EQ(beat.stop(0).reason(), "lease_lost");
  v1::FinishRunResponse finish_a;
  status = a.Finish(job_a, v1::RUN_OUTCOME_SUCCEEDED, &finish_a);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << status.error_message();

  // B's heartbeat keeps its lease; it finishes attempt 2.
  ASSERT_TRUE(b.Heartbeat({HeldLeaseOf(job_b, 4)}, &beat).ok());
  EXPECT_EQ(beat.stop_size(), 0);
  {
    std::unique_ptr<ProgressStream> stream = b.OpenProgress();
    v1::ProgressAck ack;
    ASSERT_TRUE(stream->Send(
        Batch(job_b, 1,
              {Point("train_loss", 6, 2, 0.4), Point("train_loss", 8, 2, 0.3),
               Point("val_accuracy", 8, 2, 0.66)}),
        &ack));
    EXPECT_EQ(ack.acked_sequence(), 1);
    EXPECT_FALSE(ack.stop());
    ASSERT_TRUE(stream->Close().ok());
  }
  v1::FinishRunResponse finish_b;
  status = b.Finish(job_b, v1::RUN_OUTCOME_SUCCEEDED, &finish_b);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(finish_b.state(), v1::RUN_STATE_SUCCEEDED);
  b_alive.Stop();
  EXPECT_EQ(b_alive.error(), "");

  absl::StatusOr<v1::Run> done = GetRun(sweeps_.get(), run_id);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(done->attempt(), 2);
  // Attempt 1's points plus attempt 2's; A's refused point is not there.
  EXPECT_DOUBLE_EQ(done->latest_metrics().at("train_loss"), 0.3);
  EXPECT_DOUBLE_EQ(done->best_metric(), 0.66);
  EXPECT_EQ(done->best_epoch(), 2);

  // The event log tells the story: attempt 1 leased to A, expired back to
  // PENDING with attempt 2, leased to B, succeeded.
  WatchResult watch = WatchToEnd(sweeps_.get(), done->sweep_id(), 0, true);
  ASSERT_TRUE(watch.status.ok()) << watch.status.error_message();
  std::vector<std::tuple<v1::RunState, int, std::string>> changes;
  int metric_points = 0;
  for (const v1::SweepEvent& event : watch.events) {
    if (event.has_run_state()) {
      changes.emplace_back(event.run_state().state(),
                           event.run_state().attempt(),
                           event.run_state().worker_id());
    }
    if (event.has_metric()) ++metric_points;
  }
  EXPECT_THAT(changes,
              ::testing::ElementsAre(
                  std::make_tuple(v1::RUN_STATE_LEASED, 1, a.worker_id()),
                  std::make_tuple(v1::RUN_STATE_RUNNING, 1, a.worker_id()),
                  std::make_tuple(v1::RUN_STATE_PENDING, 2, a.worker_id()),
                  std::make_tuple(v1::RUN_STATE_LEASED, 2, b.worker_id()),
                  std::make_tuple(v1::RUN_STATE_RUNNING, 2, b.worker_id()),
                  std::make_tuple(v1::RUN_STATE_SUCCEEDED, 2, b.worker_id())));
  EXPECT_EQ(metric_points, 6);
}

}  // namespace
}  // namespace lora::integration
