// The run state machine and sweep state derivation, on literal inputs: every
// legal transition, every illegal one, lease ownership, lease expiry,
// attempt budgets and requeues.
#include "coordinator/run_state.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lora::coordinator {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using Kind = RunTransition::Kind;

constexpr char kRun[] = "run-7";

const std::vector<RunState>& AllStates() {
  static const auto* states = new std::vector<RunState>{
      RunState::kPending,   RunState::kLeased, RunState::kRunning,
      RunState::kSucceeded, RunState::kFailed, RunState::kCancelled};
  return *states;
}

const std::vector<Kind>& AllKinds() {
  static const auto* kinds = new std::vector<Kind>{
      Kind::kLease,       Kind::kStart,   Kind::kRenewLease,
      Kind::kCheckpoint,  Kind::kSucceed, Kind::kFail,
      Kind::kExpireLease, Kind::kCancel,  Kind::kRequeue};
  return *kinds;
}

// A run in `state` at attempt 2 of 3; leased states are held by w1 until
// t=5000.
RunLifecycle RunIn(RunState state) {
  RunLifecycle run;
  run.state = state;
  run.attempt = 2;
  run.max_attempts = 3;
  run.error = "earlier error";
  run.checkpoint_artifact_id = "sha256:ckpt";
  run.start_ms = 100;
  if (state == RunState::kLeased || state == RunState::kRunning) {
    run.worker_id = "w1";
    run.lease_expire_ms = 5000;
  }
  if (IsTerminal(state)) run.end_ms = 900;
  return run;
}

// A transition of `kind` at t=6000 that the lease holder of RunIn() sends.
RunTransition Send(Kind kind) {
  RunTransition t;
  t.kind = kind;
  t.now_ms = 6000;
  t.worker_id = "w1";
  t.attempt = 2;
  t.lease_expire_ms = 9000;
  t.error = "CUDA out of memory";
  t.artifact_id = "sha256:art";
  t.max_attempts = 3;
  return t;
}

bool IsLegal(RunState state, Kind kind) {
  const bool leased = state == RunState::kLeased || state == RunState::kRunning;
  switch (kind) {
    case Kind::kLease:
      return state == RunState::kPending;
    case Kind::kStart:
      return state == RunState::kLeased;
    case Kind::kRenewLease:
    case Kind::kCheckpoint:
    case Kind::kSucceed:
    case Kind::kFail:
    case Kind::kExpireLease:
      return leased;
    case Kind::kCancel:
      return true;
    case Kind::kRequeue:
      return state == RunState::kFailed || state == RunState::kCancelled;
  }
  return false;
}

TEST(RunStateNamesTest, NamesParseBackAndTerminalStatesAreTheLastThree) {
  for (RunState state : AllStates()) {
    absl::StatusOr<RunState> parsed = ParseRunState(RunStateName(state));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, state);
  }
  EXPECT_EQ(RunStateName(RunState::kLeased), "LEASED");
  EXPECT_FALSE(IsTerminal(RunState::kPending));
  EXPECT_FALSE(IsTerminal(RunState::kLeased));
  EXPECT_FALSE(IsTerminal(RunState::kRunning));
  EXPECT_TRUE(IsTerminal(RunState::kSucceeded));
  EXPECT_TRUE(IsTerminal(RunState::kFailed));
  EXPECT_TRUE(IsTerminal(RunState::kCancelled));
  absl::StatusOr<RunState> bad = ParseRunState("leased");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("\"leased\""));
  EXPECT_EQ(TransitionName(Kind::kExpireLease), "EXPIRE_LEASE");
  EXPECT_EQ(SweepStateName(SweepState::kCancelled), "CANCELLED");
}

TEST(ApplyTransitionTest, LeaseHandsPendingRunToWorkerAndRecordsFirstStart) {
  RunLifecycle run;  // fresh: attempt 1, start_ms 0
  RunTransition lease = Send(Kind::kLease);
  lease.worker_id = "w9";
  absl::StatusOr<RunLifecycle> next = ApplyTransition(kRun, run, lease);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->state, RunState::kLeased);
  EXPECT_EQ(next->worker_id, "w9");
  EXPECT_EQ(next->lease_expire_ms, 9000);
  EXPECT_EQ(next->start_ms, 6000);
  EXPECT_EQ(next->attempt, 1);

  // A later attempt keeps the time of the first lease.
  next = ApplyTransition(kRun, RunIn(RunState::kPending), lease);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->start_ms, 100);
  EXPECT_EQ(next->attempt, 2);
  EXPECT_EQ(next->checkpoint_artifact_id, "sha256:ckpt");
}

TEST(ApplyTransitionTest, LeaseWithoutWorkerIsInvalid) {
  RunTransition lease = Send(Kind::kLease);
  lease.worker_id = "";
  EXPECT_EQ(
      ApplyTransition(kRun, RunIn(RunState::kPending), lease).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(ApplyTransitionTest, StartMovesLeasedRunToRunning) {
  absl::StatusOr<RunLifecycle> next =
      ApplyTransition(kRun, RunIn(RunState::kLeased), Send(Kind::kStart));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->state, RunState::kRunning);
  EXPECT_EQ(next->worker_id, "w1");
  EXPECT_EQ(next->lease_expire_ms, 5000);
}

TEST(ApplyTransitionTest, RenewLeaseMovesTheDeadlineOnly) {
  for (RunState state : {RunState::kLeased, RunState::kRunning}) {
    absl::StatusOr<RunLifecycle> next =
        ApplyTransition(kRun, RunIn(state), Send(Kind::kRenewLease));
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(next->state, state);
    EXPECT_EQ(next->lease_expire_ms, 9000);
    EXPECT_EQ(next->worker_id, "w1");
    EXPECT_EQ(next->attempt, 2);
  }
}

TEST(ApplyTransitionTest, CheckpointRecordsTheArtifact) {
  for (RunState state : {RunState::kLeased, RunState::kRunning}) {
    absl::StatusOr<RunLifecycle> next =
        ApplyTransition(kRun, RunIn(state), Send(Kind::kCheckpoint));
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(next->state, state);
    EXPECT_EQ(next->checkpoint_artifact_id, "sha256:art");
    EXPECT_EQ(next->lease_expire_ms, 5000);
  }
}

TEST(ApplyTransitionTest, SucceedEndsTheRunAndClearsTheLease) {
  for (RunState state : {RunState::kLeased, RunState::kRunning}) {
    absl::StatusOr<RunLifecycle> next =
        ApplyTransition(kRun, RunIn(state), Send(Kind::kSucceed));
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(next->state, RunState::kSucceeded);
    EXPECT_EQ(next->adapter_artifact_id, "sha256:art");
    EXPECT_EQ(next->end_ms, 6000);
    EXPECT_EQ(next->worker_id, "");
    EXPECT_EQ(next->lease_expire_ms, 0);
    EXPECT_EQ(next->attempt, 2);
  }
}

TEST(ApplyTransitionTest, RetryableFailureReturnsRunToPendingForNextAttempt) {
  for (RunState state : {RunState::kLeased, RunState::kRunning}) {
    absl::StatusOr<RunLifecycle> next =
        ApplyTransition(kRun, RunIn(state), Send(Kind::kFail));
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(next->state, RunState::kPending);
    EXPECT_EQ(next->attempt, 3);
    EXPECT_EQ(next->max_attempts, 3);
    EXPECT_EQ(next->error, "CUDA out of memory");
    EXPECT_EQ(next->checkpoint_artifact_id, "sha256:ckpt");
    EXPECT_EQ(next->worker_id, "");
    EXPECT_EQ(next->lease_expire_ms, 0);
    EXPECT_EQ(next->end_ms, 0);
  }
}

TEST(ApplyTransitionTest, NonRetryableFailureFailsAtOnce) {
  RunTransition fail = Send(Kind::kFail);
  fail.retryable = false;
  fail.error = "lora.rank must be >= 1, got 0";
  absl::StatusOr<RunLifecycle> next =
      ApplyTransition(kRun, RunIn(RunState::kRunning), fail);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->state, RunState::kFailed);
  EXPECT_EQ(next->attempt, 2);
  EXPECT_EQ(next->error, "lora.rank must be >= 1, got 0");
  EXPECT_EQ(next->end_ms, 6000);
  EXPECT_EQ(next->worker_id, "");
}

TEST(ApplyTransitionTest, FailureOfTheLastAttemptFailsWithTheLastError) {
  RunLifecycle run = RunIn(RunState::kRunning);
  run.attempt = 3;
  RunTransition fail = Send(Kind::kFail);
  fail.attempt = 3;
  absl::StatusOr<RunLifecycle> next = ApplyTransition(kRun, run, fail);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->state, RunState::kFailed);
  EXPECT_EQ(next->attempt, 3);
  EXPECT_EQ(next->error, "CUDA out of memory");
  EXPECT_EQ(next->end_ms, 6000);
  EXPECT_EQ(next->lease_expire_ms, 0);
}

TEST(ApplyTransitionTest, LeaseExpiresOnlyOnceItsDeadlineHasPassed) {
  RunTransition expire;
  expire.kind = Kind::kExpireLease;  // sent by the coordinator: no worker
  expire.now_ms = 4999;
  absl::StatusOr<RunLifecycle> early =
      ApplyTransition(kRun, RunIn(RunState::kRunning), expire);
  EXPECT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(early.status().message(),
              AllOf(HasSubstr(kRun), HasSubstr("5000"), HasSubstr("4999")));

  expire.now_ms = 5000;
  for (RunState state : {RunState::kLeased, RunState::kRunning}) {
    absl::StatusOr<RunLifecycle> next =
        ApplyTransition(kRun, RunIn(state), expire);
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(next->state, RunState::kPending);
    EXPECT_EQ(next->attempt, 3);
    EXPECT_EQ(next->error, "lease of worker w1 expired at attempt 2");
    EXPECT_EQ(next->checkpoint_artifact_id, "sha256:ckpt");
    EXPECT_EQ(next->worker_id, "");
    EXPECT_EQ(next->lease_expire_ms, 0);
  }
}

TEST(ApplyTransitionTest, ExpiryOfTheLastAttemptFailsTheRun) {
  RunLifecycle run = RunIn(RunState::kLeased);
  run.attempt = 3;
  RunTransition expire;
  expire.kind = Kind::kExpireLease;
  expire.now_ms = 7000;
  absl::StatusOr<RunLifecycle> next = ApplyTransition(kRun, run, expire);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->state, RunState::kFailed);
  EXPECT_EQ(next->error, "lease of worker w1 expired at attempt 3");
  EXPECT_EQ(next->end_ms, 7000);
}

TEST(ApplyTransitionTest, CancelEndsEveryActiveRun) {
  for (RunState state :
       {RunState::kPending, RunState::kLeased, RunState::kRunning}) {
    RunTransition cancel;
    cancel.kind = Kind::kCancel;
    cancel.now_ms = 6000;
    absl::StatusOr<RunLifecycle> next =
        ApplyTransition(kRun, RunIn(state), cancel);
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(next->state, RunState::kCancelled) << RunStateName(state);
    EXPECT_EQ(next->end_ms, 6000);
    EXPECT_EQ(next->worker_id, "");
    EXPECT_EQ(next->lease_expire_ms, 0);
    EXPECT_EQ(next->attempt, 2);
  }
}

TEST(ApplyTransitionTest, CancelOfTerminalRunChangesNothing) {
  for (RunState state :
       {RunState::kSucceeded, RunState::kFailed, RunState::kCancelled}) {
    RunLifecycle run = RunIn(state);
    run.adapter_artifact_id = "sha256:adapter";
    RunTransition cancel;
    cancel.kind = Kind::kCancel;
    cancel.now_ms = 6000;
    absl::StatusOr<RunLifecycle> next = ApplyTransition(kRun, run, cancel);
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(next->state, state);
    EXPECT_EQ(next->end_ms, 900);
    EXPECT_EQ(next->adapter_artifact_id, "sha256:adapter");
  }
}

TEST(ApplyTransitionTest, RequeueGivesFailedAndCancelledRunsAFreshBudget) {
  for (RunState state : {RunState::kFailed, RunState::kCancelled}) {
    RunLifecycle run = RunIn(state);
    run.attempt = 3;
    RunTransition requeue;
    requeue.kind = Kind::kRequeue;
    requeue.now_ms = 6000;
    requeue.max_attempts = 2;
    absl::StatusOr<RunLifecycle> next = ApplyTransition(kRun, run, requeue);
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(next->state, RunState::kPending);
    EXPECT_EQ(next->attempt, 4);
    EXPECT_EQ(next->max_attempts, 5);  // attempts 4 and 5
    EXPECT_EQ(next->end_ms, 0);
    EXPECT_EQ(next->checkpoint_artifact_id, "sha256:ckpt");
  }
}

TEST(ApplyTransitionTest, RequeueBudgetIsSpentByFailures) {
  RunLifecycle run = RunIn(RunState::kFailed);
  run.attempt = 3;
  RunTransition requeue;
  requeue.kind = Kind::kRequeue;
  requeue.max_attempts = 2;
  absl::StatusOr<RunLifecycle> next = ApplyTransition(kRun, run, requeue);
  ASSERT_TRUE(next.ok()) << next.status();
  // Attempt 4 fails retryably (-> attempt 5), attempt 5 fails for good.
  for (int64_t attempt : {4, 5}) {
    RunTransition lease = Send(Kind::kLease);
    next = ApplyTransition(kRun, *next, lease);
    ASSERT_TRUE(next.ok()) << next.status();
    RunTransition fail = Send(Kind::kFail);
    fail.attempt = attempt;
    fail.error = absl::StrCat("boom ", attempt);
    next = ApplyTransition(kRun, *next, fail);
    ASSERT_TRUE(next.ok()) << next.status();
  }
  EXPECT_EQ(next->state, RunState::kFailed);
  EXPECT_EQ(next->attempt, 5);
  EXPECT_EQ(next->error, "boom 5");
}

TEST(ApplyTransitionTest, RequeueNeedsAPositiveBudget) {
  RunTransition requeue;
  requeue.kind = Kind::kRequeue;
  requeue.max_attempts = 0;
  EXPECT_EQ(
      ApplyTransition(kRun, RunIn(RunState::kFailed), requeue).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(ApplyTransitionTest, EveryIllegalTransitionIsAFailedPrecondition) {
  int illegal = 0;
  for (RunState state : AllStates()) {
    for (Kind kind : AllKinds()) {
      RunTransition transition = Send(kind);
      if (kind == Kind::kExpireLease) transition.now_ms = 5000;  // due
      absl::StatusOr<RunLifecycle> next =
          ApplyTransition(kRun, RunIn(state), transition);
      const std::string what =
          absl::StrCat(TransitionName(kind), " on ", RunStateName(state));
      if (IsLegal(state, kind)) {
        EXPECT_TRUE(next.ok()) << what << ": " << next.status();
        continue;
      }
      ++illegal;
      EXPECT_EQ(next.status().code(), absl::StatusCode::kFailedPrecondition)
          << what;
      EXPECT_THAT(next.status().message(),
                  AllOf(HasSubstr(kRun), HasSubstr(TransitionName(kind)),
                        HasSubstr(RunStateName(state))))
          << what;
    }
  }
  // 6 states x 9 kinds = 54; legal: lease 1, start 1, five lease-holder
  // kinds x 2, cancel 6, requeue 2 = 20.
  EXPECT_EQ(illegal, 54 - 20);
}

TEST(ApplyTransitionTest, WorkerSideTransitionsNeedTheCurrentLease) {
  for (Kind kind : {Kind::kStart, Kind::kRenewLease, Kind::kCheckpoint,
                    Kind::kSucceed, Kind::kFail}) {
    const RunState state =
        kind == Kind::kStart ? RunState::kLeased : RunState::kRunning;
    RunTransition other_worker = Send(kind);
    other_worker.worker_id = "w2";
    RunTransition old_attempt = Send(kind);
    old_attempt.attempt = 1;
    for (const RunTransition& transition : {other_worker, old_attempt}) {
      absl::StatusOr<RunLifecycle> next =
          ApplyTransition(kRun, RunIn(state), transition);
      EXPECT_EQ(next.status().code(), absl::StatusCode::kFailedPrecondition)
          << TransitionName(kind);
      EXPECT_THAT(next.status().message(),
                  AllOf(HasSubstr("lease lost"), HasSubstr(kRun),
                        HasSubstr(TransitionName(kind))));
    }
  }
}

TEST(ApplyTransitionTest, WorkerWhoseLeaseExpiredCannotFinishTheNextAttempt) {
  RunLifecycle run;
  RunTransition lease = Send(Kind::kLease);
  lease.now_ms = 1000;
  lease.lease_expire_ms = 2000;
  absl::StatusOr<RunLifecycle> next = ApplyTransition(kRun, run, lease);
  ASSERT_TRUE(next.ok());
  RunTransition expire;
  expire.kind = Kind::kExpireLease;
  expire.now_ms = 2000;
  next = ApplyTransition(kRun, *next, expire);
  ASSERT_TRUE(next.ok());
  lease.worker_id = "w2";
  next = ApplyTransition(kRun, *next, lease);
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->attempt, 2);

  RunTransition stale = Send(Kind::kSucceed);
  stale.worker_id = "w1";
  stale.attempt = 1;
  EXPECT_EQ(ApplyTransition(kRun, *next, stale).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // The same worker at the new attempt would still not be the holder.
  stale.attempt = 2;
  EXPECT_EQ(ApplyTransition(kRun, *next, stale).status().code(),
            absl::StatusCode::kFailedPrecondition);

  RunTransition succeed = Send(Kind::kSucceed);
  succeed.worker_id = "w2";
  succeed.attempt = 2;
  next = ApplyTransition(kRun, *next, succeed);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->state, RunState::kSucceeded);
  EXPECT_EQ(next->start_ms, 1000);
}

RunCounts Counts(int64_t pending, int64_t leased, int64_t running,
                 int64_t succeeded, int64_t failed, int64_t cancelled) {
  RunCounts counts;
  counts.pending = pending;
  counts.leased = leased;
  counts.running = running;
  counts.succeeded = succeeded;
  counts.failed = failed;
  counts.cancelled = cancelled;
  return counts;
}

TEST(DeriveSweepStateTest, FollowsTheDocumentedTable) {
  struct Case {
    RunCounts counts;
    bool cancelled;
    SweepState expected;
  };
  const Case cases[] = {
      {Counts(4, 0, 0, 0, 0, 0), false, SweepState::kPending},
      {Counts(3, 1, 0, 0, 0, 0), false, SweepState::kRunning},
      {Counts(3, 0, 1, 0, 0, 0), false, SweepState::kRunning},
      // A finished run with the rest pending (e.g. after a requeue).
      {Counts(3, 0, 0, 1, 0, 0), false, SweepState::kRunning},
      {Counts(1, 0, 0, 0, 3, 0), false, SweepState::kRunning},
      {Counts(0, 0, 0, 4, 0, 0), false, SweepState::kSucceeded},
      {Counts(0, 0, 0, 3, 1, 0), false, SweepState::kFailed},
      {Counts(0, 0, 0, 2, 1, 1), false, SweepState::kFailed},
      {Counts(0, 0, 0, 3, 0, 1), false, SweepState::kCancelled},
      // Cancelled sweep: CANCELLED once nothing is active, whatever ended.
      {Counts(0, 0, 0, 2, 1, 1), true, SweepState::kCancelled},
      {Counts(0, 0, 0, 4, 0, 0), true, SweepState::kCancelled},
      {Counts(1, 0, 0, 0, 0, 3), true, SweepState::kRunning},
      {Counts(1, 0, 0, 0, 0, 0), true, SweepState::kPending},
      {Counts(0, 0, 0, 0, 0, 0), false, SweepState::kPending},
      {Counts(0, 0, 0, 0, 0, 0), true, SweepState::kCancelled},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(DeriveSweepState(c.counts, c.cancelled), c.expected)
        << "pending " << c.counts.pending << " leased " << c.counts.leased
        << " running " << c.counts.running << " succeeded "
        << c.counts.succeeded << " failed " << c.counts.failed << " cancelled "
        << c.counts.cancelled << " sweep cancelled " << c.cancelled;
  }
}

TEST(RunCountsTest, AddMovesOneStateAndTotalSumsAll) {
  RunCounts counts = Counts(2, 0, 0, 0, 0, 0);
  counts.Add(RunState::kPending, -1);
  counts.Add(RunState::kLeased);
  counts.Add(RunState::kCancelled, 3);
  EXPECT_EQ(counts.pending, 1);
  EXPECT_EQ(counts.leased, 1);
  EXPECT_EQ(counts.cancelled, 3);
  EXPECT_EQ(counts.total(), 5);
}

}  // namespace
}  // namespace lora::coordinator
