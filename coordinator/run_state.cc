#include "coordinator/run_state.h"

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace lora::coordinator {
namespace {

using Kind = RunTransition::Kind;

bool HoldsLease(RunState state) {
  return state == RunState::kLeased || state == RunState::kRunning;
}

absl::Status Illegal(const std::string& run_id, Kind kind, RunState state) {
  return absl::FailedPreconditionError(
      absl::StrCat("run ", run_id, ": ", TransitionName(kind),
                   " cannot apply to a ", RunStateName(state), " run"));
}

// A worker-side transition must come from the current lease: the holder of
// the lease of the run's current attempt.
absl::Status CheckLease(const std::string& run_id, const RunLifecycle& run,
                        const RunTransition& transition) {
  if (!HoldsLease(run.state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", run_id, ": ", TransitionName(transition.kind),
                     " cannot apply to a ", RunStateName(run.state),
                     " run: lease lost (", "worker ", transition.worker_id,
                     ", attempt ", transition.attempt, ")"));
  }
  if (transition.worker_id != run.worker_id ||
      transition.attempt != run.attempt) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", run_id, ": ", TransitionName(transition.kind),
                     " from worker ", transition.worker_id, " at attempt ",
                     transition.attempt, " rejected: lease lost (the ",
                     RunStateName(run.state), " run is held by worker ",
                     run.worker_id, " at attempt ", run.attempt, ")"));
  }
  return absl::OkStatus();
}

void ClearLease(RunLifecycle& run) {
  run.worker_id.clear();
  run.lease_expire_ms = 0;
}

// The end of an attempt that did not succeed: back to PENDING for the next
// attempt (keeping the checkpoint to resume from) or FAILED for good.
RunLifecycle EndAttempt(RunLifecycle run, const std::string& error,
                        bool retryable, int64_t now_ms) {
  ClearLease(run);
  run.error = error;
  if (retryable && run.attempt < run.max_attempts) {
    run.state = RunState::kPending;
    ++run.attempt;
  } else {
    run.state = RunState::kFailed;
    run.end_ms = now_ms;
  }
  return run;
}

}  // namespace

std::string RunStateName(RunState state) {
  switch (state) {
    case RunState::kPending:
      return "PENDING";
    case RunState::kLeased:
      return "LEASED";
    case RunState::kRunning:
      return "RUNNING";
    case RunState::kSucceeded:
      return "SUCCEEDED";
    case RunState::kFailed:
      return "FAILED";
    case RunState::kCancelled:
      return "CANCELLED";
  }
  return absl::StrCat("RunState(", static_cast<int>(state), ")");
}

absl::StatusOr<RunState> ParseRunState(const std::string& name) {
  for (RunState state :
       {RunState::kPending, RunState::kLeased, RunState::kRunning,
        RunState::kSucceeded, RunState::kFailed, RunState::kCancelled}) {
    if (name == RunStateName(state)) return state;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown run state \"", name,
      "\"; expected PENDING, LEASED, RUNNING, SUCCEEDED, FAILED or CANCELLED"));
}

bool IsTerminal(RunState state) {
  return state == RunState::kSucceeded || state == RunState::kFailed ||
         state == RunState::kCancelled;
}

std::string TransitionName(RunTransition::Kind kind) {
  switch (kind) {
    case Kind::kLease:
      return "LEASE";
    case Kind::kStart:
      return "START";
    case Kind::kRenewLease:
      return "RENEW_LEASE";
    case Kind::kCheckpoint:
      return "CHECKPOINT";
    case Kind::kSucceed:
      return "SUCCEED";
    case Kind::kFail:
      return "FAIL";
    case Kind::kExpireLease:
      return "EXPIRE_LEASE";
    case Kind::kCancel:
      return "CANCEL";
    case Kind::kRequeue:
      return "REQUEUE";
  }
  return absl::StrCat("Transition(", static_cast<int>(kind), ")");
}

absl::StatusOr<RunLifecycle> ApplyTransition(const std::string& run_id,
                                             const RunLifecycle& run,
                                             const RunTransition& transition) {
  const Kind kind = transition.kind;
  RunLifecycle next = run;
  switch (kind) {
    case Kind::kLease:
      if (run.state != RunState::kPending) {
        return Illegal(run_id, kind, run.state);
      }
      if (transition.worker_id.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("run ", run_id, ": LEASE needs a worker id"));
      }
      next.state = RunState::kLeased;
      next.worker_id = transition.worker_id;
      next.lease_expire_ms = transition.lease_expire_ms;
      if (next.start_ms == 0) next.start_ms = transition.now_ms;
      return next;

    case Kind::kStart:
      if (run.state != RunState::kLeased) {
        return HoldsLease(run.state) ? Illegal(run_id, kind, run.state)
                                     : CheckLease(run_id, run, transition);
      }
      if (absl::Status s = CheckLease(run_id, run, transition); !s.ok()) {
        return s;
      }
      next.state = RunState::kRunning;
      return next;

    case Kind::kRenewLease:
      if (absl::Status s = CheckLease(run_id, run, transition); !s.ok()) {
        return s;
      }
      next.lease_expire_ms = transition.lease_expire_ms;
      return next;

    case Kind::kCheckpoint:
      if (absl::Status s = CheckLease(run_id, run, transition); !s.ok()) {
        return s;
      }
      next.checkpoint_artifact_id = transition.artifact_id;
      return next;

    case Kind::kSucceed:
      if (absl::Status s = CheckLease(run_id, run, transition); !s.ok()) {
        return s;
      }
      ClearLease(next);
      next.state = RunState::kSucceeded;
      next.adapter_artifact_id = transition.artifact_id;
      next.end_ms = transition.now_ms;
      return next;

    case Kind::kFail:
      if (absl::Status s = CheckLease(run_id, run, transition); !s.ok()) {
        return s;
      }
      return EndAttempt(run, transition.error, transition.retryable,
                        transition.now_ms);

    case Kind::kExpireLease:
      if (!HoldsLease(run.state)) return Illegal(run_id, kind, run.state);
      if (run.lease_expire_ms > transition.now_ms) {
        return absl::FailedPreconditionError(absl::StrCat(
            "run ", run_id, ": EXPIRE_LEASE rejected: the lease of worker ",
            run.worker_id, " runs until ", run.lease_expire_ms, " ms, now is ",
            transition.now_ms, " ms"));
      }
      return EndAttempt(run,
                        absl::StrCat("lease of worker ", run.worker_id,
                                     " expired at attempt ", run.attempt),
                        /*retryable=*/true, transition.now_ms);

    case Kind::kCancel:
      if (IsTerminal(run.state)) return next;
      ClearLease(next);
      next.state = RunState::kCancelled;
      next.end_ms = transition.now_ms;
      return next;

    case Kind::kRequeue:
      if (run.state != RunState::kFailed && run.state != RunState::kCancelled) {
        return Illegal(run_id, kind, run.state);
      }
      if (transition.max_attempts < 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "run ", run_id, ": REQUEUE needs max_attempts >= 1, got ",
            transition.max_attempts));
      }
      next.state = RunState::kPending;
      ++next.attempt;
      next.max_attempts = next.attempt + transition.max_attempts - 1;
      next.end_ms = 0;
      return next;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "run ", run_id, ": unknown transition ", static_cast<int>(kind)));
}

std::string SweepStateName(SweepState state) {
  switch (state) {
    case SweepState::kPending:
      return "PENDING";
    case SweepState::kRunning:
      return "RUNNING";
    case SweepState::kSucceeded:
      return "SUCCEEDED";
    case SweepState::kFailed:
      return "FAILED";
    case SweepState::kCancelled:
      return "CANCELLED";
  }
  return absl::StrCat("SweepState(", static_cast<int>(state), ")");
}

void RunCounts::Add(RunState state, int64_t delta) {
  switch (state) {
    case RunState::kPending:
      pending += delta;
      return;
    case RunState::kLeased:
      leased += delta;
      return;
    case RunState::kRunning:
      running += delta;
      return;
    case RunState::kSucceeded:
      succeeded += delta;
      return;
    case RunState::kFailed:
      failed += delta;
      return;
    case RunState::kCancelled:
      cancelled += delta;
      return;
  }
}

SweepState DeriveSweepState(const RunCounts& counts, bool cancelled) {
  const int64_t active = counts.pending + counts.leased + counts.running;
  const int64_t terminal = counts.succeeded + counts.failed + counts.cancelled;
  if (cancelled && active == 0) return SweepState::kCancelled;
  if (active > 0 || terminal == 0) {
    return counts.leased + counts.running + terminal > 0 ? SweepState::kRunning
                                                         : SweepState::kPending;
  }
  if (counts.failed > 0) return SweepState::kFailed;
  if (counts.cancelled > 0) return SweepState::kCancelled;
  return SweepState::kSucceeded;
}

}  // namespace lora::coordinator
