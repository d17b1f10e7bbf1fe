// Conformance suite for GradientReducer: every implementation sums and
// broadcasts alike. Gloo runs two ranks as threads of this process,
// rendezvousing on a free port of 127.0.0.1.
#include "lora_core/gradient_reducer.h"

#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lora_core/gloo_gradient_reducer.h"
#include "lora_core/rank_launcher.h"

namespace lora::core {
namespace {

using ::testing::HasSubstr;
using Ranks = std::vector<std::unique_ptr<GradientReducer>>;

// Runs `body(rank, reducer)` on every rank at once (collectives block until
// all ranks join).
void OnEveryRank(Ranks& ranks,
                 const std::function<void(int, GradientReducer&)>& body) {
  std::vector<std::thread> threads;
  for (size_t rank = 0; rank < ranks.size(); ++rank) {
    threads.emplace_back(
        [&, rank] { body(static_cast<int>(rank), *ranks[rank]); });
  }
  for (std::thread& thread : threads) thread.join();
}

Ranks NoOp() {
  Ranks ranks;
  ranks.push_back(std::make_unique<NoOpGradientReducer>());
  return ranks;
}

Ranks GlooPair() {
  absl::StatusOr<int> port = FreeLoopbackPort();
  EXPECT_TRUE(port.ok()) << port.status();
  Ranks ranks(2);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 2; ++rank) {
    threads.emplace_back([&, rank] {
      DistributedOptions options;
      options.rank = rank;
      options.world_size = 2;
      options.master_addr = "127.0.0.1";
      options.master_port = *port;
      absl::StatusOr<std::unique_ptr<GlooGradientReducer>> reducer =
          GlooGradientReducer::Open(options);
      EXPECT_TRUE(reducer.ok()) << reducer.status();
      if (reducer.ok()) ranks[rank] = std::move(*reducer);
    });
  }
  for (std::thread& thread : threads) thread.join();
  return ranks;
}

struct Implementation {
  std::string name;
  std::function<Ranks()> open;
};

class GradientReducerConformanceTest
    : public ::testing::TestWithParam<Implementation> {};

TEST_P(GradientReducerConformanceTest, KnowsItsRanks) {
  Ranks ranks = GetParam().open();
  for (size_t rank = 0; rank < ranks.size(); ++rank) {
    ASSERT_NE(ranks[rank], nullptr);
    EXPECT_EQ(ranks[rank]->rank(), static_cast<int>(rank));
    EXPECT_EQ(ranks[rank]->world_size(), static_cast<int>(ranks.size()));
  }
}

TEST_P(GradientReducerConformanceTest, AllReduceSumAddsEveryRanksTensor) {
  Ranks ranks = GetParam().open();
  for (const auto& rank : ranks) ASSERT_NE(rank, nullptr);
  const int world_size = static_cast<int>(ranks.size());
  // Rank r contributes (r + 1) * [1, 2, 3] (and 1/(r+1) in float64).
  std::vector<at::Tensor> floats(world_size), doubles(world_size),
      longs(world_size);
  std::vector<bool> ok(world_size);
  OnEveryRank(ranks, [&](int rank, GradientReducer& reducer) {
    floats[rank] = at::arange(1, 4, at::kFloat) * (rank + 1);
    doubles[rank] = at::full({2}, 1.0 / (rank + 1), at::kDouble);
    longs[rank] = at::arange(1, 4, at::kLong) * (rank + 1);
    ok[rank] = reducer.AllReduceSum(floats[rank]).ok() &&
               reducer.AllReduceSum(doubles[rank]).ok() &&
               reducer.AllReduceSum(longs[rank]).ok();
  });
  const int64_t factor = world_size * (world_size + 1) / 2;
  double harmonic = 0;
  for (int rank = 0; rank < world_size; ++rank) harmonic += 1.0 / (rank + 1);
  for (int rank = 0; rank < world_size; ++rank) {
    ASSERT_TRUE(ok[rank]) << "rank " << rank;
    EXPECT_TRUE(at::equal(floats[rank], at::arange(1, 4, at::kFloat) * factor))
        << floats[rank];
    EXPECT_TRUE(at::equal(longs[rank], at::arange(1, 4, at::kLong) * factor))
        << longs[rank];
    EXPECT_NEAR(doubles[rank][0].item<double>(), harmonic, 1e-15);
    // Every rank holds the same bits.
    EXPECT_TRUE(at::equal(floats[rank], floats[0]));
    EXPECT_TRUE(at::equal(doubles[rank], doubles[0]));
  }
}

TEST_P(GradientReducerConformanceTest, BroadcastCopiesRankZerosTensor) {
  Ranks ranks = GetParam().open();
  for (const auto& rank : ranks) ASSERT_NE(rank, nullptr);
  const int world_size = static_cast<int>(ranks.size());
  std::vector<at::Tensor> tensors(world_size);
  std::vector<bool> ok(world_size);
  OnEveryRank(ranks, [&](int rank, GradientReducer& reducer) {
    tensors[rank] = at::full({4}, 10.0f * (rank + 1), at::kFloat);
    ok[rank] = reducer.Broadcast(tensors[rank]).ok();
  });
  for (int rank = 0; rank < world_size; ++rank) {
    ASSERT_TRUE(ok[rank]) << "rank " << rank;
    EXPECT_TRUE(at::equal(tensors[rank], at::full({4}, 10.0f, at::kFloat)))
        << "rank " << rank << ": " << tensors[rank];
  }
}

INSTANTIATE_TEST_SUITE_P(
    Implementations, GradientReducerConformanceTest,
    ::testing::Values(Implementation{"NoOp", NoOp},
                      Implementation{"Gloo", GlooPair}),
    [](const ::testing::TestParamInfo<Implementation>& info) {
      return info.param.name;
    });

TEST(GlooGradientReducerTest, RendezvousWithoutRankZeroIsUnavailable) {
  absl::StatusOr<int> port = FreeLoopbackPort();
  ASSERT_TRUE(port.ok()) << port.status();
  DistributedOptions options;
  options.rank = 1;
  options.world_size = 2;
  options.master_addr = "127.0.0.1";
  options.master_port = *port;
  GlooGradientReducer::Timeouts timeouts;
  timeouts.rendezvous = std::chrono::seconds(1);
  absl::StatusOr<std::unique_ptr<GlooGradientReducer>> reducer =
      GlooGradientReducer::Open(options, timeouts);
  ASSERT_FALSE(reducer.ok());
  EXPECT_EQ(reducer.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(reducer.status().message()),
              HasSubstr("rank 1 of 2: rendezvous through 127.0.0.1:" +
                        std::to_string(*port) + " failed"));
}

TEST(GlooGradientReducerTest, RejectsARankOutsideTheWorld) {
  DistributedOptions options;
  options.rank = 2;
  options.world_size = 2;
  options.master_addr = "127.0.0.1";
  options.master_port = 1234;
  absl::StatusOr<std::unique_ptr<GlooGradientReducer>> reducer =
      GlooGradientReducer::Open(options);
  ASSERT_FALSE(reducer.ok());
  EXPECT_EQ(reducer.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lora::core
