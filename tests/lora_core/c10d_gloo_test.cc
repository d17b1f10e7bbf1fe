// Data-parallel building block: two c10d Gloo process groups (one per
// thread, rendezvous through a FileStore, transport on 127.0.0.1) allreduce a
// gradient-like tensor. Proves Debian's libtorch + libgloo link and work.
#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace {

TEST(C10dGlooTest, TwoRanksAllreduceSumsOverLoopback) {
  const std::string store_path =
      std::string(std::getenv("TEST_TMPDIR")) + "/gloo_store";
  constexpr int kWorldSize = 2;
  std::vector<at::Tensor> results(kWorldSize);
  std::vector<std::string> errors(kWorldSize);
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < kWorldSize; ++rank) {
    ranks.emplace_back([&, rank] {
      try {
        auto store =
            c10::make_intrusive<::c10d::FileStore>(store_path, kWorldSize);
        auto options = ::c10d::ProcessGroupGloo::Options::create();
        options->devices.push_back(
            ::c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
        ::c10d::ProcessGroupGloo group(store, rank, kWorldSize, options);
        // Rank r contributes [r+1, 2(r+1), 3(r+1)].
        std::vector<at::Tensor> tensors = {at::arange(1, 4, at::kFloat) *
                                           (rank + 1)};
        group.allreduce(tensors)->wait();
        results[rank] = tensors[0];
      } catch (const std::exception& error) {
        errors[rank] = error.what();
      }
    });
  }
  for (std::thread& rank : ranks) rank.join();
  const at::Tensor expected = at::arange(1, 4, at::kFloat) * 3;  // 1x + 2x.
  for (int rank = 0; rank < kWorldSize; ++rank) {
    ASSERT_TRUE(errors[rank].empty())
        << "rank " << rank << ": " << errors[rank];
    EXPECT_TRUE(at::equal(results[rank], expected)) << "rank " << rank;
  }
}

}  // namespace
