// FollowSweep's reconnect policy (loractl/sweep_watch.h) against an address
// where nothing listens, on a fake clock: retryable errors are retried with
// doubling backoff up to the cap, and it gives up once no stream delivered
// anything for reconnect_timeout. (Resuming across a real restart is
// tests/loractl/loractl_watch_restart_test.)
#include "loractl/sweep_watch.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "loractl/client.h"
#include "tests/fakes/fake_clock.h"

namespace lora::loractl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(FollowSweepTest, RetriesWithBackoffThenGivesUp) {
  ClientOptions client_options;
  client_options.server = "127.0.0.1:1";  // nothing listens on port 1
  std::unique_ptr<LoradClient> client = LoradClient::Create(client_options);
  FakeClock clock;
  FollowOptions options;
  options.clock = &clock;
  options.after_sequence = 41;
  options.first_backoff = absl::Seconds(1);
  options.max_backoff = absl::Seconds(4);
  options.reconnect_timeout = absl::Seconds(10);
  std::vector<absl::Duration> delays;
  std::vector<int64_t> resumed_after;
  int events = 0;
  const absl::Status status = FollowSweep(
      client.get(), "sw-1", options, [&](const v1::SweepEvent&) { ++events; },
      [&](const absl::Status& error, int64_t last, absl::Duration delay) {
        EXPECT_TRUE(absl::IsUnavailable(error)) << error;
        delays.push_back(delay);
        resumed_after.push_back(last);
      });
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("WatchSweep: UNAVAILABLE"));
  EXPECT_EQ(events, 0);
  EXPECT_THAT(delays, ElementsAre(absl::Seconds(1), absl::Seconds(2),
                                  absl::Seconds(4), absl::Seconds(4)));
  EXPECT_THAT(resumed_after, ElementsAre(41, 41, 41, 41));
}

}  // namespace
}  // namespace lora::loractl
