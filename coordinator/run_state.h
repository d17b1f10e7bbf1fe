// The run state machine, as pure functions of plain data (no clock, no I/O):
//
//   PENDING -> LEASED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED
//
// A lease that expires, or an attempt that fails retryably, sends a LEASED or
// RUNNING run back to PENDING with attempt + 1 (keeping its last checkpoint
// so the next attempt resumes), until attempts run out: then it is FAILED
// with the last error. Cancelling ends any non-terminal run; cancelling a
// terminal run changes nothing. `retry_failed` returns FAILED and CANCELLED
// runs to PENDING with a fresh attempt budget. Anything else is rejected with
// FAILED_PRECONDITION, and so is a worker acting on a lease it no longer
// holds (another worker's, or an older attempt's).
#ifndef LORA_SWEEP_COORDINATOR_RUN_STATE_H_
#define LORA_SWEEP_COORDINATOR_RUN_STATE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace lora::coordinator {

// Values match lora.v1.RunState.
enum class RunState {
  kPending = 1,
  kLeased = 2,
  kRunning = 3,
  kSucceeded = 4,
  kFailed = 5,
  kCancelled = 6,
};

// "PENDING", "LEASED", ... (lora.v1.RunState names without the prefix).
std::string RunStateName(RunState state);
absl::StatusOr<RunState> ParseRunState(const std::string& name);
bool IsTerminal(RunState state);

// The lifecycle fields of a run that transitions read and write.
struct RunLifecycle {
  RunState state = RunState::kPending;
  int64_t attempt = 1;  // 1-based
  int64_t max_attempts = 3;
  std::string worker_id;        // lease holder; empty when none
  int64_t lease_expire_ms = 0;  // unix ms; 0 when not leased
  std::string error;            // last error text
  std::string checkpoint_artifact_id;
  std::string adapter_artifact_id;
  int64_t start_ms = 0;  // first time the run was leased
  int64_t end_ms = 0;    // when it became terminal
};

struct RunTransition {
  enum class Kind {
    kLease,        // PENDING -> LEASED to `worker_id` until `lease_expire_ms`
    kStart,        // LEASED -> RUNNING (the worker's first progress)
    kRenewLease,   // LEASED|RUNNING: a new `lease_expire_ms`
    kCheckpoint,   // LEASED|RUNNING: `artifact_id` is the latest checkpoint
    kSucceed,      // LEASED|RUNNING -> SUCCEEDED, `artifact_id` = adapter
    kFail,         // LEASED|RUNNING -> PENDING (attempt + 1) or FAILED
    kExpireLease,  // LEASED|RUNNING with lease_expire_ms <= now -> as kFail
    kCancel,       // any non-terminal -> CANCELLED; terminal: unchanged
    kRequeue,      // FAILED|CANCELLED -> PENDING, attempt + 1, fresh budget
  };
  Kind kind = Kind::kLease;
  int64_t now_ms = 0;
  // Worker-side transitions (start, renew, checkpoint, succeed, fail) must
  // come from the lease holder for the current attempt.
  std::string worker_id;
  int64_t attempt = 0;
  int64_t lease_expire_ms = 0;  // kLease, kRenewLease
  std::string error;            // kFail
  // kFail: false sends the run straight to FAILED (e.g. an invalid config
  // that no retry can fix).
  bool retryable = true;
  std::string artifact_id;  // kCheckpoint, kSucceed
  // kRequeue: attempts granted from the new attempt on.
  int64_t max_attempts = 3;
};

std::string TransitionName(RunTransition::Kind kind);

// The run after `transition`, or FAILED_PRECONDITION naming the run id, the
// transition and the state it cannot apply to (or, for a worker-side
// transition, the lease it no longer holds; for kExpireLease, a lease that
// has not expired yet). INVALID_ARGUMENT for a kLease without a worker id
// and a kRequeue with max_attempts < 1.
//
// Details: kLease sets start_ms when it is 0. A run leaving its lease
// (succeed, fail, expire, cancel) has worker_id and lease_expire_ms
// cleared; SUCCEEDED, FAILED and CANCELLED set end_ms. kFail and
// kExpireLease keep the checkpoint and set `error` (kExpireLease: "lease of
// worker W expired at attempt N"). kRequeue sets max_attempts to the new
// attempt + transition.max_attempts - 1 and clears end_ms.
absl::StatusOr<RunLifecycle> ApplyTransition(const std::string& run_id,
                                             const RunLifecycle& run,
                                             const RunTransition& transition);

// Aggregate state of a sweep (values match lora.v1.SweepState).
enum class SweepState {
  kPending = 1,
  kRunning = 2,
  kSucceeded = 3,
  kFailed = 4,
  kCancelled = 5,
};
std::string SweepStateName(SweepState state);

struct RunCounts {
  int64_t pending = 0, leased = 0, running = 0, succeeded = 0, failed = 0,
          cancelled = 0;
  int64_t total() const {
    return pending + leased + running + succeeded + failed + cancelled;
  }
  void Add(RunState state, int64_t delta = 1);
};

// In this order:
//  - CANCELLED if `cancelled` is set and no run is active (PENDING, LEASED or
//    RUNNING);
//  - while any run is active: RUNNING if any run is LEASED, RUNNING or
//    terminal, PENDING if every run is PENDING;
//  - once every run is terminal: FAILED if any run failed, else CANCELLED
//    if any run was cancelled, else SUCCEEDED.
// A sweep without runs is PENDING (CANCELLED with `cancelled` set).
SweepState DeriveSweepState(const RunCounts& counts, bool cancelled);

}  // namespace lora::coordinator

#endif  // LORA_SWEEP_COORDINATOR_RUN_STATE_H_
