// Where one lora-train process stands in a data-parallel job, read from the
// environment variables torchrun sets, and how a global batch splits across
// ranks. Torch-free.
//
//   RANK         this process's rank, 0 .. N-1
//   WORLD_SIZE   N; must equal the job's world_size
//   MASTER_ADDR  host of rank 0, which serves the rendezvous store
//   MASTER_PORT  its port
#ifndef LORA_SWEEP_LORA_CORE_DISTRIBUTED_ENV_H_
#define LORA_SWEEP_LORA_CORE_DISTRIBUTED_ENV_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"

namespace lora::core {

inline constexpr char kRankVariable[] = "RANK";
inline constexpr char kLocalRankVariable[] = "LOCAL_RANK";
inline constexpr char kWorldSizeVariable[] = "WORLD_SIZE";
inline constexpr char kMasterAddrVariable[] = "MASTER_ADDR";
inline constexpr char kMasterPortVariable[] = "MASTER_PORT";

struct DistributedOptions {
  int rank = 0;
  int world_size = 1;
  // Rank 0 serves the rendezvous store here; every rank connects to it.
  std::string master_addr;
  int master_port = 0;
};

enum class DistributedRole {
  // world_size 1: train alone, no rendezvous.
  kSingleProcess,
  // world_size > 1 and no RANK: start the N ranks (see rank_launcher.h).
  kLauncher,
  // One rank of N, started by lora-train's launcher or an external one.
  kRank,
};

struct DistributedSetup {
  DistributedRole role = DistributedRole::kSingleProcess;
  // For kRank; rank 0 of 1 for kSingleProcess; world_size only for
  // kLauncher.
  DistributedOptions options;
};

// Returns the variable's value, or nullptr when it is unset (std::getenv).
using EnvironmentLookup = std::function<const char*(const char* name)>;

// The role of a process of a job with `world_size` ranks, from its
// environment. With world_size 1, RANK and WORLD_SIZE may be absent or say
// 0 and 1. With world_size > 1, either none of RANK and WORLD_SIZE is set
// (kLauncher), or RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT all are,
// with WORLD_SIZE == world_size, 0 <= RANK < world_size and a port in
// [1, 65535] (kRank). InvalidArgument otherwise, naming the variable and its
// value: "RANK=2 is out of range for world_size 2 (expected 0..1)".
absl::StatusOr<DistributedSetup> DistributedSetupFromEnvironment(
    int64_t world_size, const EnvironmentLookup& lookup);

// The rows [begin, end) of a global batch of `rows` rows that `rank` of
// `world_size` trains on: contiguous, in rank order, sizes differing by at
// most one (earlier ranks take the extra rows), so the shards of all ranks
// are exactly the global batch. A rank's range is empty when rows <
// world_size and rank >= rows.
struct RowRange {
  int64_t begin = 0;
  int64_t end = 0;
  bool empty() const { return begin >= end; }
};
RowRange ShardRows(int64_t rows, int rank, int world_size);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_DISTRIBUTED_ENV_H_
