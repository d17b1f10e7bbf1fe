#include "lora_core/distributed_env.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lora::core {
namespace {

using ::testing::HasSubstr;

EnvironmentLookup Environment(std::map<std::string, std::string> values) {
  auto shared =
      std::make_shared<std::map<std::string, std::string>>(std::move(values));
  return [shared](const char* name) -> const char* {
    auto it = shared->find(name);
    return it == shared->end() ? nullptr : it->second.c_str();
  };
}

TEST(DistributedEnvTest, WorldSizeOneIsOneProcessWhateverTheEnvironment) {
  absl::StatusOr<DistributedSetup> setup =
      DistributedSetupFromEnvironment(1, Environment({}));
  ASSERT_TRUE(setup.ok()) << setup.status();
  EXPECT_EQ(setup->role, DistributedRole::kSingleProcess);
  EXPECT_EQ(setup->options.rank, 0);
  EXPECT_EQ(setup->options.world_size, 1);

  setup = DistributedSetupFromEnvironment(
      1, Environment({{"RANK", "0"}, {"WORLD_SIZE", "1"}}));
  ASSERT_TRUE(setup.ok()) << setup.status();
  EXPECT_EQ(setup->role, DistributedRole::kSingleProcess);
}

TEST(DistributedEnvTest, NoRankMeansLaunchTheRanks) {
  absl::StatusOr<DistributedSetup> setup =
      DistributedSetupFromEnvironment(4, Environment({}));
  ASSERT_TRUE(setup.ok()) << setup.status();
  EXPECT_EQ(setup->role, DistributedRole::kLauncher);
  EXPECT_EQ(setup->options.world_size, 4);
}

TEST(DistributedEnvTest, ReadsARankLikeTorchrun) {
  absl::StatusOr<DistributedSetup> setup = DistributedSetupFromEnvironment(
      2, Environment({{"RANK", "1"},
                      {"WORLD_SIZE", "2"},
                      {"MASTER_ADDR", "127.0.0.1"},
                      {"MASTER_PORT", "29500"}}));
  ASSERT_TRUE(setup.ok()) << setup.status();
  EXPECT_EQ(setup->role, DistributedRole::kRank);
  EXPECT_EQ(setup->options.rank, 1);
  EXPECT_EQ(setup->options.world_size, 2);
  EXPECT_EQ(setup->options.master_addr, "127.0.0.1");
  EXPECT_EQ(setup->options.master_port, 29500);
}

struct BadEnvironment {
  int64_t world_size;
  std::map<std::string, std::string> values;
  const char* message;
};

class BadDistributedEnvTest : public ::testing::TestWithParam<BadEnvironment> {
};

TEST_P(BadDistributedEnvTest, NamesTheVariableAndItsValue) {
  absl::StatusOr<DistributedSetup> setup = DistributedSetupFromEnvironment(
      GetParam().world_size, Environment(GetParam().values));
  ASSERT_FALSE(setup.ok());
  EXPECT_EQ(setup.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(setup.status().message()),
              HasSubstr(GetParam().message));
}

const std::map<std::string, std::string> kRank1 = {{"RANK", "1"},
                                                   {"WORLD_SIZE", "2"},
                                                   {"MASTER_ADDR", "127.0.0.1"},
                                                   {"MASTER_PORT", "29500"}};

std::map<std::string, std::string> Rank1With(const std::string& name,
                                             const std::string& value) {
  std::map<std::string, std::string> values = kRank1;
  if (value.empty()) {
    values.erase(name);
  } else {
    values[name] = value;
  }
  return values;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadDistributedEnvTest,
    ::testing::Values(
        BadEnvironment{2, Rank1With("WORLD_SIZE", "3"),
                       "WORLD_SIZE=3 does not match the job's world_size 2"},
        BadEnvironment{1,
                       {{"WORLD_SIZE", "2"}},
                       "WORLD_SIZE=2 does not match the job's world_size 1"},
        BadEnvironment{2, Rank1With("WORLD_SIZE", "two"),
                       "WORLD_SIZE=two is not a positive integer"},
        BadEnvironment{2, Rank1With("RANK", "2"),
                       "RANK=2 is out of range for world_size 2 (expected "
                       "0..1)"},
        BadEnvironment{2, Rank1With("RANK", "-1"), "RANK=-1 is out of range"},
        BadEnvironment{1, {{"RANK", "1"}}, "RANK=1 is out of range"},
        BadEnvironment{2, Rank1With("RANK", "x"), "RANK=x is not an integer"},
        BadEnvironment{
            2, {{"WORLD_SIZE", "2"}}, "RANK=(unset) but WORLD_SIZE=2 is set"},
        BadEnvironment{2, Rank1With("WORLD_SIZE", ""),
                       "WORLD_SIZE=(unset) but RANK=1 is set"},
        BadEnvironment{2, Rank1With("MASTER_ADDR", ""),
                       "MASTER_ADDR=(unset) must name rank 0's host"},
        BadEnvironment{2, Rank1With("MASTER_PORT", ""),
                       "MASTER_PORT=(unset) must be a port number"},
        BadEnvironment{2, Rank1With("MASTER_PORT", "70000"),
                       "MASTER_PORT=70000 must be a port number in [1, "
                       "65535]"}));

TEST(ShardRowsTest, ShardsAreContiguousAndCoverTheBatchExactly) {
  for (int world_size : {1, 2, 3, 4, 8}) {
    for (int64_t rows : {0, 1, 2, 3, 5, 8, 31, 32}) {
      int64_t next = 0;
      for (int rank = 0; rank < world_size; ++rank) {
        const RowRange range = ShardRows(rows, rank, world_size);
        EXPECT_EQ(range.begin, next) << rows << " rows, rank " << rank;
        EXPECT_GE(range.end, range.begin);
        EXPECT_LE(range.end - range.begin, rows / world_size + 1);
        EXPECT_GE(range.end - range.begin, rows / world_size);
        next = range.end;
      }
      EXPECT_EQ(next, rows) << rows << " rows over " << world_size;
    }
  }
  EXPECT_EQ(ShardRows(8, 1, 2).begin, 4);
  EXPECT_EQ(ShardRows(8, 1, 2).end, 8);
  EXPECT_EQ(ShardRows(5, 0, 2).end, 3);  // earlier ranks take the extra row
  EXPECT_TRUE(ShardRows(1, 1, 2).empty());
}

}  // namespace
}  // namespace lora::core
