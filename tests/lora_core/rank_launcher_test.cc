#include "lora_core/rank_launcher.h"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace lora::core {
namespace {

std::string TempDir() { return std::getenv("TEST_TMPDIR"); }

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Each rank runs `script` under /bin/sh with $1 = the test's temp folder.
RankLaunchOptions Shell(const std::string& script, int world_size) {
  RankLaunchOptions options;
  options.executable = "/bin/sh";
  options.argv = {"sh", "-c", script, "sh", TempDir()};
  options.world_size = world_size;
  return options;
}

TEST(RankLauncherTest, GivesEveryRankItsEnvironment) {
  absl::StatusOr<int> status = LaunchRanks(
      Shell("echo \"$RANK $LOCAL_RANK $WORLD_SIZE $MASTER_ADDR $MASTER_PORT\" "
            "> \"$1/env_$RANK\"",
            3));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 0);
  std::string port;
  for (int rank = 0; rank < 3; ++rank) {
    std::istringstream line(Read(TempDir() + "/env_" + std::to_string(rank)));
    int seen_rank, local_rank, world_size;
    std::string addr, rank_port;
    line >> seen_rank >> local_rank >> world_size >> addr >> rank_port;
    EXPECT_EQ(seen_rank, rank);
    EXPECT_EQ(local_rank, rank);
    EXPECT_EQ(world_size, 3);
    EXPECT_EQ(addr, "127.0.0.1");
    EXPECT_GT(std::stoi(rank_port), 0);
    if (rank > 0) EXPECT_EQ(rank_port, port) << "ranks disagree on the port";
    port = rank_port;
  }
}

TEST(RankLauncherTest, ExitsWithRankZerosStatus) {
  absl::StatusOr<int> status =
      LaunchRanks(Shell("[ \"$RANK\" = 0 ] && exit 3; exit 0", 2));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 3);
}

TEST(RankLauncherTest, AFailingRankKillsTheOthersAndGivesItsStatus) {
  // Rank 0 would wait for a minute; rank 1 fails at once.
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<int> status = LaunchRanks(
      Shell("if [ \"$RANK\" = 0 ]; then exec sleep 60; else exit 5; fi", 2));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 5);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
}

TEST(RankLauncherTest, AKilledRankCountsAsOneHundredTwentyEightPlusSignal) {
  absl::StatusOr<int> status = LaunchRanks(Shell("kill -9 $$", 1));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 128 + 9);
}

TEST(RankLauncherTest, AMissingProgramIsAFailure) {
  RankLaunchOptions options;
  options.executable = TempDir() + "/no_such_program";
  options.argv = {"no_such_program"};
  options.world_size = 2;
  absl::StatusOr<int> status = LaunchRanks(options);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 127);
}

TEST(RankLauncherTest, FreeLoopbackPortIsAPort) {
  absl::StatusOr<int> port = FreeLoopbackPort();
  ASSERT_TRUE(port.ok()) << port.status();
  EXPECT_GT(*port, 0);
  EXPECT_LT(*port, 65536);
}

}  // namespace
}  // namespace lora::core
