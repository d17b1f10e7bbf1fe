// Starts the ranks of a data-parallel job on this machine, as torchrun
// --standalone would: N copies of a program, each with RANK, LOCAL_RANK,
// WORLD_SIZE, MASTER_ADDR and MASTER_PORT added to this process's
// environment. Torch-free. Used by `lora-train train` when a job has
// world_size > 1 and no RANK is set, so a worker runs such a job exactly as
// any other (one child process, one exit status, one SIGTERM).
#ifndef LORA_SWEEP_LORA_CORE_RANK_LAUNCHER_H_
#define LORA_SWEEP_LORA_CORE_RANK_LAUNCHER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace lora::core {

struct RankLaunchOptions {
  // The program each rank runs, and its argv (argv[0] included).
  std::string executable;
  std::vector<std::string> argv;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  // 0: a port that is free on 127.0.0.1 when the ranks start.
  int master_port = 0;
};

// Starts options.world_size ranks and waits for all of them. While it waits,
// SIGTERM and SIGINT sent to this process are passed on to every rank
// (lora-train ranks agree on a step to checkpoint and stop at). When a rank
// fails (a non-zero exit or a signal), the others are killed with SIGKILL:
// they could only wait for it. Ranks are also killed if this process dies
// (PR_SET_PDEATHSIG).
//
// Returns the job's exit status: rank 0's, or, when rank 0 was killed because
// another rank failed first, that rank's (a signal counts as 128 + its
// number, as in a shell). Internal when a rank cannot be started (then none
// is left running); InvalidArgument for world_size < 1.
absl::StatusOr<int> LaunchRanks(const RankLaunchOptions& options);

// A TCP port that is free on 127.0.0.1 now (bound to port 0 and released).
absl::StatusOr<int> FreeLoopbackPort();

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_RANK_LAUNCHER_H_
