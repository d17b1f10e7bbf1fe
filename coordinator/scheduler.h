// Scheduling decisions as pure functions of plain data: which pending run a
// worker gets, which leases have expired, which workers are up. The
// coordinator's services gather the data from the run store and apply the
// decisions through it; tests drive these functions with a fake clock
// (times are plain unix milliseconds).
//
// Fairness: the highest sweep priority is served first. Among sweeps of
// that priority that have a run the worker can take, the sweep with the
// fewest active (LEASED or RUNNING) runs is served, so a big sweep cannot
// starve a small one; ties go to the older sweep (create time, then id).
// Within a sweep, runs resuming a previous attempt come first (they hold
// progress), then the lowest index.
#ifndef LORA_SWEEP_COORDINATOR_SCHEDULER_H_
#define LORA_SWEEP_COORDINATOR_SCHEDULER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace lora::coordinator {

// What a pending run needs.
struct PendingRun {
  std::string run_id;
  std::string sweep_id;
  int64_t sweep_priority = 0;
  int64_t sweep_create_ms = 0;
  int64_t index = 0;
  int64_t attempt = 1;
  std::string device = "cpu";  // "cpu" | "cuda"
  int64_t gpus = 0;
  std::map<std::string, std::string> worker_labels;  // required labels
};

// What a worker offers now.
struct WorkerOffer {
  std::string worker_id;
  std::string device = "cpu";  // "cpu" | "cuda"
  int64_t gpu_count = 0;
  std::map<std::string, std::string> labels;
  int64_t free_slots = 1;
};

// Whether `worker` can train `run`: same device kind, at least the GPUs the
// run needs, and every label the run requires present with the same value.
// On false, `why` (if not null) says what is missing, e.g.
// "needs label pool=a100".
bool Matches(const PendingRun& run, const WorkerOffer& worker,
             std::string* why = nullptr);

// The run to lease to `worker`, by the fairness rule above, or nullopt when
// the worker has no free slot or nothing matches. `active_by_sweep` counts
// each sweep's LEASED and RUNNING runs.
std::optional<std::string> ChooseRun(
    const std::vector<PendingRun>& pending, const WorkerOffer& worker,
    const std::map<std::string, int64_t>& active_by_sweep);

// Lease timing handed to workers.
struct LeaseTiming {
  int64_t heartbeat_interval_ms = 5000;
  int64_t lease_ttl_ms = 30000;
};

// InvalidArgument unless both are positive and the TTL is at least five
// heartbeat intervals.
absl::Status ValidateLeaseTiming(const LeaseTiming& timing);

// A lease held on a run.
struct HeldRun {
  std::string run_id;
  int64_t lease_expire_ms = 0;
};

// The runs whose lease expired at `now_ms` (expire time <= now), in input
// order.
std::vector<std::string> ExpiredLeases(const std::vector<HeldRun>& held,
                                       int64_t now_ms);

// A worker is up while its last heartbeat is within one lease TTL.
bool WorkerUp(int64_t last_heartbeat_ms, int64_t now_ms,
              const LeaseTiming& timing);

// A run is stalled when its step has not advanced for `stall_after_ms`
// while it was RUNNING (the coordinator exports stalled runs per sweep).
bool Stalled(int64_t last_progress_ms, int64_t now_ms, int64_t stall_after_ms);

}  // namespace lora::coordinator

#endif  // LORA_SWEEP_COORDINATOR_SCHEDULER_H_
