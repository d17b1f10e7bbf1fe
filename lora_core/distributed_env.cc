#include "lora_core/distributed_env.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace lora::core {
namespace {

absl::Status Problem(const char* variable, const char* value,
                     const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(
      variable, "=", value == nullptr ? "(unset)" : value, " ", what));
}

}  // namespace

absl::StatusOr<DistributedSetup> DistributedSetupFromEnvironment(
    int64_t world_size, const EnvironmentLookup& lookup) {
  const char* rank_text = lookup(kRankVariable);
  const char* world_text = lookup(kWorldSizeVariable);
  DistributedSetup setup;
  setup.options.world_size = static_cast<int>(world_size);

  int64_t world = world_size;
  if (world_text != nullptr) {
    if (!absl::SimpleAtoi(world_text, &world) || world < 1) {
      return Problem(kWorldSizeVariable, world_text,
                     "is not a positive integer");
    }
    if (world != world_size) {
      return Problem(
          kWorldSizeVariable, world_text,
          absl::StrCat("does not match the job's world_size ", world_size));
    }
  }
  int64_t rank = 0;
  if (rank_text != nullptr) {
    if (!absl::SimpleAtoi(rank_text, &rank)) {
      return Problem(kRankVariable, rank_text, "is not an integer");
    }
    if (rank < 0 || rank >= world_size) {
      return Problem(kRankVariable, rank_text,
                     absl::StrCat("is out of range for world_size ", world_size,
                                  " (expected 0..", world_size - 1, ")"));
    }
  }
  if (world_size == 1) return setup;

  if (rank_text == nullptr) {
    if (world_text != nullptr) {
      return Problem(kRankVariable, rank_text,
                     absl::StrCat("but ", kWorldSizeVariable, "=", world_text,
                                  " is set: an external launcher must set "
                                  "both (or neither, to have lora-train "
                                  "start the ranks itself)"));
    }
    setup.role = DistributedRole::kLauncher;
    return setup;
  }
  if (world_text == nullptr) {
    return Problem(kWorldSizeVariable, world_text,
                   absl::StrCat("but ", kRankVariable, "=", rank_text,
                                " is set: a rank needs ", kWorldSizeVariable,
                                ", ", kMasterAddrVariable, " and ",
                                kMasterPortVariable, " too"));
  }
  const char* addr = lookup(kMasterAddrVariable);
  if (addr == nullptr || *addr == '\0') {
    return Problem(kMasterAddrVariable, addr,
                   "must name rank 0's host (e.g. 127.0.0.1)");
  }
  const char* port_text = lookup(kMasterPortVariable);
  int64_t port = 0;
  if (port_text == nullptr || !absl::SimpleAtoi(port_text, &port) || port < 1 ||
      port > 65535) {
    return Problem(kMasterPortVariable, port_text,
                   "must be a port number in [1, 65535]");
  }
  setup.role = DistributedRole::kRank;
  setup.options.rank = static_cast<int>(rank);
  setup.options.master_addr = addr;
  setup.options.master_port = static_cast<int>(port);
  return setup;
}

RowRange ShardRows(int64_t rows, int rank, int world_size) {
  const int64_t base = rows / world_size;
  const int64_t extra = rows % world_size;
  RowRange range;
  range.begin = rank * base + std::min<int64_t>(rank, extra);
  range.end = range.begin + base + (rank < extra ? 1 : 0);
  return range;
}

}  // namespace lora::core
