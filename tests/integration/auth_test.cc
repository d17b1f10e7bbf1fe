// Bearer tokens on the real lorad started with --tokens_file: calls without a
// token or with an unknown one are UNAUTHENTICATED on every kind of RPC
// (unary, client, server and bidirectional streaming), a token of the wrong
// role is PERMISSION_DENIED, and the right tokens work end to end.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/lorad_process.h"
#include "tests/integration/test_clients.h"

namespace lora::integration {
namespace {

using ::testing::HasSubstr;

constexpr char kClientToken[] = "client-3b6f0c1e9a0d4c8f8d2e";
constexpr char kWorkerToken[] = "worker-9e8d7c6b5a4f3e2d1c0b";
constexpr char kAdminToken[] = "admin-0f1e2d3c4b5a69788796";
constexpr char kWrongToken[] = "nobody-00000000000000000000";

const char kSweep[] = R"(name: auth
model: roberta-tiny
task: polarity
parameters:
  seed: [0]
)";

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshTestDir("auth");
    tokens_file_ = dir_ + "/tokens";
    std::ofstream tokens(tokens_file_);
    tokens << "# role token name\n"
           << "client " << kClientToken << " alice\n"
           << "worker " << kWorkerToken << " pool-a\n"
           << "admin  " << kAdminToken << "\n";
    tokens.close();
    ASSERT_EQ(::chmod(tokens_file_.c_str(), 0600), 0);
  }

  void StartLorad() {
    LoradOptions options;
    options.dir = dir_ + "/lorad";
    options.heartbeat_interval = "200ms";
    options.lease_ttl = "10s";
    options.tokens_file = tokens_file_;
    absl::StatusOr<std::unique_ptr<LoradProcess>> lorad =
        LoradProcess::Start(options);
    ASSERT_TRUE(lorad.ok()) << lorad.status();
    lorad_ = std::move(*lorad);
    sweeps_ = lorad_->SweepStub();
    workers_ = lorad_->WorkerStub();
  }

  void TearDown() override {
    // Clients first: lorad's shutdown waits (up to 5 s) for connected
    // clients to go away.
    sweeps_.reset();
    workers_.reset();
    if (lorad_ != nullptr) {
      absl::Status stopped = lorad_->Stop();
      EXPECT_TRUE(stopped.ok()) << stopped;
    }
  }

  grpc::StatusCode ListSweeps(const std::string& token) {
    v1::ListSweepsRequest request;
    v1::ListSweepsResponse reply;
    grpc::ClientContext context;
    PrepareContext(&context, token);
    return sweeps_->ListSweeps(&context, request, &reply).error_code();
  }

  grpc::StatusCode Submit(const std::string& token) {
    v1::SubmitSweepResponse reply;
    return SubmitYaml(sweeps_.get(), kSweep, &reply, false, token).error_code();
  }

  grpc::StatusCode Watch(const std::string& token) {
    v1::WatchSweepRequest request;
    request.set_sweep_id("sweep-that-does-not-matter");
    grpc::ClientContext context;
    PrepareContext(&context, token);
    std::unique_ptr<grpc::ClientReader<v1::SweepEvent>> reader =
        sweeps_->WatchSweep(&context, request);
    v1::SweepEvent event;
    while (reader->Read(&event)) {
    }
    return reader->Finish().error_code();
  }

  grpc::StatusCode Register(const std::string& token) {
    TestWorker worker(lorad_->NewChannel(), "auth-worker", token);
    return worker.Register().error_code();
  }

  grpc::StatusCode Acquire(const std::string& token) {
    v1::AcquireJobRequest request;
    request.set_worker_id("w-unknown");
    v1::AcquireJobResponse reply;
    grpc::ClientContext context;
    PrepareContext(&context, token);
    return workers_->AcquireJob(&context, request, &reply).error_code();
  }

  grpc::StatusCode Progress(const std::string& token) {
    ProgressStream stream(workers_.get(), token);
    v1::ProgressBatch batch;
    batch.set_run_id("run-that-does-not-matter");
    batch.set_sequence(1);
    v1::ProgressAck ack;
    stream.Send(batch, &ack);
    return stream.Close().error_code();
  }

  grpc::StatusCode Upload(const std::string& token) {
    TestWorker worker(lorad_->NewChannel(), "auth-uploader", token);
    const std::string folder = dir_ + "/artifact";
    std::filesystem::create_directories(folder);
    std::ofstream(folder + "/file.txt") << "bytes";
    absl::StatusOr<v1::UploadArtifactResponse> uploaded =
        worker.UploadFolder(folder, v1::ARTIFACT_KIND_DATASET, "");
    return static_cast<grpc::StatusCode>(uploaded.status().code());
  }

  grpc::StatusCode Download(const std::string& token) {
    TestWorker worker(lorad_->NewChannel(), "auth-downloader", token);
    return static_cast<grpc::StatusCode>(
        worker.Download("sha256:" + std::string(64, 'a')).status().code());
  }

  std::string dir_;
  std::string tokens_file_;
  std::unique_ptr<LoradProcess> lorad_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
};

TEST_F(AuthTest, MissingOrUnknownTokensAreUnauthenticated) {
  ASSERT_NO_FATAL_FAILURE(StartLorad());
  for (const std::string& token : {std::string(""), std::string(kWrongToken)}) {
    SCOPED_TRACE(token.empty() ? "no token" : "unknown token");
    EXPECT_EQ(ListSweeps(token), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Submit(token), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Watch(token), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Register(token), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Acquire(token), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Progress(token), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Upload(token), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Download(token), grpc::StatusCode::UNAUTHENTICATED);
  }
  // A right token under another scheme is no bearer token.
  v1::ListSweepsRequest request;
  v1::ListSweepsResponse reply;
  grpc::ClientContext context;
  context.AddMetadata("authorization", absl::StrCat("Basic ", kClientToken));
  EXPECT_EQ(sweeps_->ListSweeps(&context, request, &reply).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // Nothing was stored by the refused calls.
  EXPECT_EQ(ListSweeps(kClientToken), grpc::StatusCode::OK);
  v1::ListSweepsResponse sweeps;
  grpc::ClientContext list_context;
  PrepareContext(&list_context, kClientToken);
  ASSERT_TRUE(sweeps_->ListSweeps(&list_context, request, &sweeps).ok());
  EXPECT_EQ(sweeps.sweeps_size(), 0);
}

TEST_F(AuthTest, TokensOfTheWrongRoleArePermissionDenied) {
  ASSERT_NO_FATAL_FAILURE(StartLorad());
  // Worker tokens may not call SweepService.
  EXPECT_EQ(Submit(kWorkerToken), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ListSweeps(kWorkerToken), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Watch(kWorkerToken), grpc::StatusCode::PERMISSION_DENIED);
  // Client tokens may not call WorkerService.
  EXPECT_EQ(Acquire(kClientToken), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Register(kClientToken), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Progress(kClientToken), grpc::StatusCode::PERMISSION_DENIED);
  // The refused submission stored nothing.
  v1::ListSweepsRequest request;
  v1::ListSweepsResponse sweeps;
  grpc::ClientContext context;
  PrepareContext(&context, kClientToken);
  ASSERT_TRUE(sweeps_->ListSweeps(&context, request, &sweeps).ok());
  EXPECT_EQ(sweeps.sweeps_size(), 0);
  // The message names who was refused, never the token.
  v1::SubmitSweepResponse reply;
  grpc::Status refused =
      SubmitYaml(sweeps_.get(), kSweep, &reply, false, kWorkerToken);
  EXPECT_THAT(refused.error_message(), HasSubstr("pool-a"));
  EXPECT_THAT(refused.error_message(), ::testing::Not(HasSubstr(kWorkerToken)));
}

TEST_F(AuthTest, RightTokensWorkEndToEnd) {
  ASSERT_NO_FATAL_FAILURE(StartLorad());
  v1::SubmitSweepResponse submitted;
  grpc::Status status =
      SubmitYaml(sweeps_.get(), kSweep, &submitted, false, kClientToken);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(submitted.runs_size(), 1);

  TestWorker worker(lorad_->NewChannel(), "auth-worker", kWorkerToken);
  ASSERT_TRUE(worker.Register().ok());
  v1::AcquireJobResponse acquired;
  status = worker.Acquire(absl::Seconds(5), &acquired);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(acquired.has_job());
  std::unique_ptr<ProgressStream> stream = worker.OpenProgress();
  v1::ProgressAck ack;
  ASSERT_TRUE(stream->Send(
      Batch(acquired.job(), 1, {Point("val_accuracy", 1, 1, 0.7)}), &ack));
  EXPECT_EQ(ack.acked_sequence(), 1);
  ASSERT_TRUE(stream->Close().ok());
  v1::HeartbeatResponse beat;
  ASSERT_TRUE(worker.Heartbeat({HeldLeaseOf(acquired.job())}, &beat).ok());
  EXPECT_EQ(beat.stop_size(), 0);
  v1::FinishRunResponse finished;
  ASSERT_TRUE(
      worker.Finish(acquired.job(), v1::RUN_OUTCOME_SUCCEEDED, &finished).ok());
  EXPECT_EQ(finished.state(), v1::RUN_STATE_SUCCEEDED);

  // Workers upload with their token; clients download with theirs.
  const std::string folder = dir_ + "/adapter";
  std::filesystem::create_directories(folder);
  std::ofstream(folder + "/adapter_config.json") << R"({"r": 1})";
  absl::StatusOr<v1::UploadArtifactResponse> uploaded = worker.UploadFolder(
      folder, v1::ARTIFACT_KIND_ADAPTER, acquired.job().run().run_id());
  ASSERT_TRUE(uploaded.ok()) << uploaded.status();
  {
    v1::GetArtifactRequest request;
    request.set_artifact_id(uploaded->artifact().artifact_id());
    v1::Artifact artifact;
    grpc::ClientContext context;
    PrepareContext(&context, kClientToken);
    ASSERT_TRUE(sweeps_->GetArtifact(&context, request, &artifact).ok());
    EXPECT_EQ(artifact.files_size(), 1);
  }

  // The admin token opens both services.
  EXPECT_EQ(ListSweeps(kAdminToken), grpc::StatusCode::OK);
  TestWorker admin(lorad_->NewChannel(), "admin-worker", kAdminToken);
  EXPECT_TRUE(admin.Register().ok());
  EXPECT_TRUE(admin.Heartbeat({}, &beat).ok());

  WatchResult watch;
  {
    v1::WatchSweepRequest request;
    request.set_sweep_id(submitted.sweep().sweep_id());
    request.set_include_metrics(true);
    grpc::ClientContext context;
    PrepareContext(&context, kClientToken);
    std::unique_ptr<grpc::ClientReader<v1::SweepEvent>> reader =
        sweeps_->WatchSweep(&context, request);
    v1::SweepEvent event;
    while (reader->Read(&event)) watch.events.push_back(event);
    watch.status = reader->Finish();
  }
  EXPECT_TRUE(watch.status.ok()) << watch.status.error_message();
  EXPECT_FALSE(watch.events.empty());
}

TEST_F(AuthTest, LoradRefusesATokensFileOthersCanRead) {
  ASSERT_EQ(::chmod(tokens_file_.c_str(), 0644), 0);
  LoradOptions options;
  options.dir = dir_ + "/lorad";
  options.tokens_file = tokens_file_;
  absl::StatusOr<std::unique_ptr<LoradProcess>> lorad =
      LoradProcess::Start(options);
  ASSERT_FALSE(lorad.ok());
  EXPECT_THAT(std::string(lorad.status().message()),
              HasSubstr("exited before serving"));
  EXPECT_THAT(std::string(lorad.status().message()), HasSubstr(tokens_file_));
}

}  // namespace
}  // namespace lora::integration
