#include "base/metrics_http.h"

#include <httplib.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "base/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lora::metrics {
namespace {

using ::testing::HasSubstr;

httplib::Result Fetch(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2);
  client.set_read_timeout(2);
  return client.Get(path.c_str());
}

class MetricsHttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto family =
        registry_.AddCounter("lora_requests_total", "Requests.", {"path"});
    ASSERT_TRUE(family.ok()) << family.status();
    requests_ = *family;
  }

  Registry registry_;
  std::shared_ptr<CounterFamily> requests_;
};

TEST_F(MetricsHttpServerTest, ServesTheExpositionOnAFreePort) {
  MetricsHttpServer server(&registry_);
  EXPECT_EQ(server.port(), 0);
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  ASSERT_GT(server.port(), 0);

  requests_->WithLabels({"/a"})->Increment(3);
  httplib::Result result = Fetch(server.port(), "/metrics");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->get_header_value("Content-Type"),
            "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(result->body, registry_.Exposition());
  EXPECT_THAT(result->body, HasSubstr("lora_requests_total{path=\"/a\"} 3\n"));

  // Each scrape reads the registry afresh.
  requests_->WithLabels({"/a"})->Increment();
  result = Fetch(server.port(), "/metrics");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_THAT(result->body, HasSubstr("lora_requests_total{path=\"/a\"} 4\n"));

  result = Fetch(server.port(), "/nothing-here");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 404);
}

TEST_F(MetricsHttpServerTest, HealthzIsOkWhileServing) {
  MetricsHttpServer server(&registry_);
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  httplib::Result result = Fetch(server.port(), "/healthz");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->body, "ok\n");
}

TEST_F(MetricsHttpServerTest, ReadyzFollowsTheReadinessCheck) {
  std::atomic<bool> ready{false};
  MetricsHttpServer server(&registry_, [&ready] {
    return ready ? absl::OkStatus()
                 : absl::UnavailableError("run store not open yet");
  });
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());

  httplib::Result result = Fetch(server.port(), "/readyz");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 503);
  EXPECT_THAT(result->body, HasSubstr("run store not open yet"));
  // Not ready is not unhealthy.
  result = Fetch(server.port(), "/healthz");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);

  ready = true;
  result = Fetch(server.port(), "/readyz");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->body, "ok\n");
}

TEST_F(MetricsHttpServerTest, WithoutReadinessCheckIsAlwaysReady) {
  MetricsHttpServer server(&registry_);
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  httplib::Result result = Fetch(server.port(), "/readyz");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
}

TEST_F(MetricsHttpServerTest, StopClosesThePortAndStartServesAgain) {
  MetricsHttpServer server(&registry_);
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  const int port = server.port();
  server.Stop();
  EXPECT_EQ(server.port(), 0);
  EXPECT_FALSE(Fetch(port, "/healthz"));
  server.Stop();  // a no-op

  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  httplib::Result result = Fetch(server.port(), "/healthz");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
}

TEST_F(MetricsHttpServerTest, StopRightAfterStartReturns) {
  for (int i = 0; i < 20; ++i) {
    MetricsHttpServer server(&registry_);
    ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
    server.Stop();
  }
}

TEST_F(MetricsHttpServerTest, DestructorStops) {
  int port = 0;
  {
    MetricsHttpServer server(&registry_);
    ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
    port = server.port();
    ASSERT_TRUE(Fetch(port, "/healthz"));
  }
  EXPECT_FALSE(Fetch(port, "/healthz"));
}

TEST_F(MetricsHttpServerTest, StartTwiceIsFailedPrecondition) {
  MetricsHttpServer server(&registry_);
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  EXPECT_EQ(server.Start("127.0.0.1", 0).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(MetricsHttpServerTest, PortInUseIsUnavailable) {
  MetricsHttpServer first(&registry_);
  ASSERT_TRUE(first.Start("127.0.0.1", 0).ok());
  MetricsHttpServer second(&registry_);
  absl::Status status = second.Start("127.0.0.1", first.port());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(),
              HasSubstr("127.0.0.1:" + std::to_string(first.port())));
  EXPECT_EQ(second.port(), 0);
}

TEST_F(MetricsHttpServerTest, AddressNotOnThisMachineIsUnavailable) {
  MetricsHttpServer server(&registry_);
  // TEST-NET-1 (RFC 5737): never a local address.
  absl::Status status = server.Start("192.0.2.1", 0);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("192.0.2.1"));
}

TEST_F(MetricsHttpServerTest, PortOutOfRangeIsInvalidArgument) {
  MetricsHttpServer server(&registry_);
  EXPECT_EQ(server.Start("127.0.0.1", 65536).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server.Start("127.0.0.1", -1).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lora::metrics
