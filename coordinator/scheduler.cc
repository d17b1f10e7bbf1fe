#include "coordinator/scheduler.h"

#include <tuple>

#include "absl/strings/str_cat.h"

namespace lora::coordinator {

bool Matches(const PendingRun& run, const WorkerOffer& worker,
             std::string* why) {
  auto fail = [why](std::string reason) {
    if (why != nullptr) *why = std::move(reason);
    return false;
  };
  if (run.device != worker.device) {
    return fail(absl::StrCat("needs a ", run.device, " worker, this one is ",
                             worker.device));
  }
  if (run.gpus > worker.gpu_count) {
    return fail(absl::StrCat("needs ", run.gpus, " GPUs, the worker has ",
                             worker.gpu_count));
  }
  for (const auto& [label, value] : run.worker_labels) {
    auto found = worker.labels.find(label);
    if (found == worker.labels.end() || found->second != value) {
      return fail(absl::StrCat("needs label ", label, "=", value));
    }
  }
  return true;
}

std::optional<std::string> ChooseRun(
    const std::vector<PendingRun>& pending, const WorkerOffer& worker,
    const std::map<std::string, int64_t>& active_by_sweep) {
  if (worker.free_slots < 1) return std::nullopt;
  const PendingRun* best = nullptr;
  // Smaller keys win: priority (negated), active runs of the sweep, sweep
  // age, sweep id, then within the sweep resumed attempts first and the
  // lowest index.
  auto key = [&](const PendingRun& run) {
    auto active = active_by_sweep.find(run.sweep_id);
    const int64_t load = active == active_by_sweep.end() ? 0 : active->second;
    return std::make_tuple(-run.sweep_priority, load, run.sweep_create_ms,
                           run.sweep_id, run.attempt > 1 ? 0 : 1, run.index,
                           run.run_id);
  };
  for (const PendingRun& run : pending) {
    if (!Matches(run, worker)) continue;
    if (best == nullptr || key(run) < key(*best)) best = &run;
  }
  if (best == nullptr) return std::nullopt;
  return best->run_id;
}

absl::Status ValidateLeaseTiming(const LeaseTiming& timing) {
  if (timing.heartbeat_interval_ms <= 0 || timing.lease_ttl_ms <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "heartbeat interval (", timing.heartbeat_interval_ms,
        " ms) and lease TTL (", timing.lease_ttl_ms, " ms) must be positive"));
  }
  if (timing.lease_ttl_ms < 5 * timing.heartbeat_interval_ms) {
    return absl::InvalidArgumentError(absl::StrCat(
        "lease TTL ", timing.lease_ttl_ms,
        " ms must be at least 5 heartbeat intervals (",
        5 * timing.heartbeat_interval_ms,
        " ms), so a few lost heartbeats do not cost a run its lease"));
  }
  return absl::OkStatus();
}

std::vector<std::string> ExpiredLeases(const std::vector<HeldRun>& held,
                                       int64_t now_ms) {
  std::vector<std::string> expired;
  for (const HeldRun& run : held) {
    if (run.lease_expire_ms <= now_ms) expired.push_back(run.run_id);
  }
  return expired;
}

bool WorkerUp(int64_t last_heartbeat_ms, int64_t now_ms,
              const LeaseTiming& timing) {
  return now_ms - last_heartbeat_ms < timing.lease_ttl_ms;
}

bool Stalled(int64_t last_progress_ms, int64_t now_ms, int64_t stall_after_ms) {
  return now_ms - last_progress_ms >= stall_after_ms;
}

}  // namespace lora::coordinator
