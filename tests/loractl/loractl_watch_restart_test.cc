// `loractl watch` survives a coordinator restart: lorad is killed (kill -9)
// in the middle of a sweep and restarted on the same port and database; the
// watch reconnects from the last sequence it saw and delivers every event
// exactly once, in order, until the sweep ends.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/test_clients.h"
#include "tests/loractl/e2e_fixture.h"
#include "tests/loractl/fake_training.h"

namespace lora::loractl::testing {
namespace {

using integration::TestWorker;
using ::testing::HasSubstr;

const char kSweep[] = R"(name: restart
model: roberta-tiny
task: polarity
parameters:
  lora.rank: [1, 2]
fixed: {epochs: 3}
)";

// A port that was free a moment ago.
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t size = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  ::close(fd);
  return ntohs(address.sin_port);
}

class LoractlWatchRestartTest : public LoractlE2eTest {
 protected:
  void SetUp() override {
    LoractlE2eTest::SetUp();
    if (HasFatalFailure()) return;
    // Again on a fixed port, so the watch finds it after the restart.
    sweeps_.reset();  // lorad's shutdown waits for connected clients
    ASSERT_TRUE(lorad_->Stop().ok());
    port_ = FreePort();
    ASSERT_NO_FATAL_FAILURE(StartLorad(port_));
  }

  int port_ = 0;
};

TEST_F(LoractlWatchRestartTest, WatchResumesAfterLoradIsKilledAndRestarted) {
  const std::string file = WriteFile("sweep.yaml", kSweep);
  const LoractlResult submitted = Run({"submit", file});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string sweep_id = SweepIdOf(submitted.out);

  TestWorker worker(lorad_->NewChannel(), "restart-worker");
  ASSERT_TRUE(worker.Register().ok());
  std::vector<v1::Job> jobs;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<v1::Job> job = LeaseJob(&worker);
    ASSERT_TRUE(job.ok()) << job.status();
    ASSERT_TRUE(ReportEpochs(&worker, *job, 1, 1).ok());
    jobs.push_back(*job);
  }

  absl::StatusOr<std::unique_ptr<LoractlProcess>> piped =
      Start({"watch", sweep_id});
  ASSERT_TRUE(piped.ok()) << piped.status();
  absl::StatusOr<std::unique_ptr<LoractlProcess>> json =
      Start({"watch", sweep_id, "--output", "json"});
  ASSERT_TRUE(json.ok()) << json.status();
  // Both have replayed epoch 1 of both runs before the crash.
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (absl::Now() < give_up) {
    const std::string so_far = (*piped)->OutSoFar();
    if (std::count(so_far.begin(), so_far.end(), '\n') >= 3) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_FALSE((*json)->OutSoFar().empty());

  lorad_->Kill();
  absl::SleepFor(absl::Milliseconds(700));
  ASSERT_NO_FATAL_FAILURE(StartLorad(port_));
  worker.Reconnect(lorad_->NewChannel());
  for (const v1::Job& job : jobs) {
    ASSERT_TRUE(ReportEpochs(&worker, job, 2, 3).ok());
    absl::StatusOr<std::string> finished =
        FinishWithAdapter(&worker, job, 3, "");
    ASSERT_TRUE(finished.ok()) << finished.status();
  }

  const LoractlResult piped_result = (*piped)->Wait(absl::Seconds(60));
  EXPECT_EQ(piped_result.exit_code, 0)
      << Describe({"watch", sweep_id}, piped_result);
  EXPECT_THAT(piped_result.err, HasSubstr("watch interrupted"));
  EXPECT_THAT(piped_result.err, HasSubstr("resuming after sequence"));
  EXPECT_THAT(piped_result.out,
              HasSubstr("sweep " + sweep_id +
                        " ended SUCCEEDED: 2/2 done: 2 succeeded"));
  // Nothing printed twice, and every epoch's evaluation of both runs there.
  std::set<std::string> unique;
  for (absl::string_view line : absl::StrSplit(piped_result.out, '\n')) {
    if (line.empty()) continue;
    EXPECT_TRUE(unique.insert(std::string(line)).second)
        << "printed twice: " << line;
  }
  for (int epoch = 1; epoch <= 3; ++epoch) {
    int lines = 0;
    for (const std::string& line : unique) {
      if (line.find(absl::StrCat("epoch ", epoch, "/3")) != std::string::npos &&
          line.find(absl::StrCat("step ", epoch * kStepsPerEpoch, " ")) !=
              std::string::npos &&
          line.find("SUCCEEDED") == std::string::npos) {
        ++lines;
      }
    }
    EXPECT_GE(lines, 2) << "epoch " << epoch << "\n" << piped_result.out;
  }

  // The JSON watch saw exactly the store's events, in order, once each.
  const LoractlResult json_result = (*json)->Wait(absl::Seconds(60));
  EXPECT_EQ(json_result.exit_code, 0)
      << Describe({"watch", sweep_id, "--output", "json"}, json_result);
  std::vector<int64_t> seen;
  for (absl::string_view line : absl::StrSplit(json_result.out, '\n')) {
    if (line.empty()) continue;
    seen.push_back(nlohmann::json::parse(line)["sequence"].get<int64_t>());
  }
  integration::WatchResult store =
      integration::WatchToEnd(sweeps_.get(), sweep_id, 0, true);
  ASSERT_TRUE(store.status.ok()) << store.status.error_message();
  std::vector<int64_t> expected;
  for (const v1::SweepEvent& event : store.events) {
    expected.push_back(event.sequence());
  }
  EXPECT_EQ(seen, expected);
  EXPECT_GT(expected.size(), 20u);
}

}  // namespace
}  // namespace lora::loractl::testing
