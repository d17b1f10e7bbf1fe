// Links the generated lora.v1 and grpc.health.v1 stubs, serves both lora.v1
// services from a real gRPC server on 127.0.0.1 (port 0) and talks to it
// over a real channel.
#include <memory>
#include <string>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "lora/v1/sweep_service.grpc.pb.h"
#include "lora/v1/worker_service.grpc.pb.h"

namespace lora {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&sweep_service_);
    builder.RegisterService(&worker_service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
    server_->GetHealthCheckService()->SetServingStatus(
        v1::SweepService::service_full_name(), true);
    server_->GetHealthCheckService()->SetServingStatus(
        v1::WorkerService::service_full_name(), true);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                   grpc::InsecureChannelCredentials());
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  grpc::Status Check(const std::string& service, HealthCheckResponse* reply) {
    HealthCheckRequest request;
    request.set_service(service);
    grpc::ClientContext context;
    return Health::NewStub(channel_)->Check(&context, request, reply);
  }

  // Generated base classes: every method answers UNIMPLEMENTED.
  v1::SweepService::Service sweep_service_;
  v1::WorkerService::Service worker_service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(ApiServerTest, AnswersStandardHealthCheckForServer) {
  HealthCheckResponse reply;
  grpc::Status status = Check("", &reply);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(reply.status(), HealthCheckResponse::SERVING);
}

TEST_F(ApiServerTest, AnswersHealthCheckPerService) {
  for (const char* service :
       {"lora.v1.SweepService", "lora.v1.WorkerService"}) {
    HealthCheckResponse reply;
    grpc::Status status = Check(service, &reply);
    ASSERT_TRUE(status.ok()) << service << ": " << status.error_message();
    EXPECT_EQ(reply.status(), HealthCheckResponse::SERVING) << service;
  }
}

TEST_F(ApiServerTest, ReportsNotServingAfterStatusChange) {
  server_->GetHealthCheckService()->SetServingStatus("lora.v1.WorkerService",
                                                     false);
  HealthCheckResponse reply;
  ASSERT_TRUE(Check("lora.v1.WorkerService", &reply).ok());
  EXPECT_EQ(reply.status(), HealthCheckResponse::NOT_SERVING);
}

TEST_F(ApiServerTest, UnknownServiceIsNotFound) {
  HealthCheckResponse reply;
  EXPECT_EQ(Check("lora.v1.NoSuchService", &reply).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ApiServerTest, GeneratedStubsReachTheRegisteredServices) {
  grpc::ClientContext sweep_context;
  v1::GetSweepRequest get_sweep;
  get_sweep.set_sweep_id("sweep-does-not-matter");
  v1::Sweep sweep;
  grpc::Status sweep_status = v1::SweepService::NewStub(channel_)->GetSweep(
      &sweep_context, get_sweep, &sweep);
  EXPECT_EQ(sweep_status.error_code(), grpc::StatusCode::UNIMPLEMENTED);

  grpc::ClientContext worker_context;
  v1::RegisterWorkerRequest register_worker;
  register_worker.set_name("w1");
  register_worker.mutable_capabilities()->set_device(v1::DEVICE_KIND_CPU);
  v1::RegisterWorkerResponse registered;
  grpc::Status worker_status =
      v1::WorkerService::NewStub(channel_)->RegisterWorker(
          &worker_context, register_worker, &registered);
  EXPECT_EQ(worker_status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST(ApiContractTest, ServiceNamesAreStable) {
  // Other tooling codes against these names; renaming breaks it.
  EXPECT_STREQ(v1::SweepService::service_full_name(), "lora.v1.SweepService");
  EXPECT_STREQ(v1::WorkerService::service_full_name(), "lora.v1.WorkerService");
  EXPECT_STREQ(Health::service_full_name(), "grpc.health.v1.Health");
}

TEST(ApiContractTest, EnumsStartWithUnspecifiedZero) {
  EXPECT_EQ(v1::RunState_Name(0), "RUN_STATE_UNSPECIFIED");
  EXPECT_EQ(v1::SweepState_Name(0), "SWEEP_STATE_UNSPECIFIED");
  EXPECT_EQ(v1::SearchMethod_Name(0), "SEARCH_METHOD_UNSPECIFIED");
  EXPECT_EQ(v1::MetricGoal_Name(0), "METRIC_GOAL_UNSPECIFIED");
  EXPECT_EQ(v1::DeviceKind_Name(0), "DEVICE_KIND_UNSPECIFIED");
  EXPECT_EQ(v1::AmpMode_Name(0), "AMP_MODE_UNSPECIFIED");
  EXPECT_EQ(v1::ArtifactKind_Name(0), "ARTIFACT_KIND_UNSPECIFIED");
  EXPECT_EQ(v1::RunOutcome_Name(0), "RUN_OUTCOME_UNSPECIFIED");
}

}  // namespace
}  // namespace lora
