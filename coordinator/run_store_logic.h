// The parts of the RunStore contract (run_store.h) that do not depend on how
// records are kept, shared by MemoryRunStore and SqliteRunStore so the two
// agree by construction: input validation, the records a new sweep starts
// with, the events a change produces, sweep state upkeep and best-metric
// rules. Pure functions of plain data; an implementation detail of the
// stores, not an API for other components.
#ifndef LORA_SWEEP_COORDINATOR_RUN_STORE_LOGIC_H_
#define LORA_SWEEP_COORDINATOR_RUN_STORE_LOGIC_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/run_state.h"
#include "coordinator/run_store.h"

namespace lora::coordinator::store_logic {

// Validates a CreateSweep request (see RunStore::CreateSweep) and sets the
// derived fields of the sweep and its runs to their initial values.
absl::Status PrepareNewSweep(SweepRecord& sweep, std::vector<RunRecord>& runs);

// InvalidArgument unless limit >= 1; `what` names the method.
absl::Status CheckLimit(int64_t limit, const char* what);

absl::Status ValidateWorker(const WorkerRecord& worker);

// Also sorts the files by path.
absl::Status ValidateArtifact(ArtifactRecord& artifact);

// FailedPrecondition unless `run` takes metric points of `attempt`: the
// current attempt of a LEASED or RUNNING run.
absl::Status CheckMetricsAllowed(const RunRecord& run, int64_t attempt);

// Sets a run's lifecycle after a transition; a new attempt resets `step`.
void SetLifecycle(RunRecord& run, const RunLifecycle& next);

// The RunStateChanged event (sequence 0, for the store to assign) of a
// transition that changed a run's state.
EventRecord RunStateEvent(const std::string& sweep_id,
                          const std::string& run_id, const RunLifecycle& before,
                          const RunLifecycle& after,
                          const RunTransition& transition);

// Moves one run from `before` to `after` in the sweep's counts.
void CountTransition(SweepRecord& sweep, RunState before, RunState after);

// Derives the sweep's state from its counts and cancelled mark; if it
// changed, updates state and end_ms and returns the SweepStateChanged event
// (sequence 0).
std::optional<EventRecord> RederiveSweepState(SweepRecord& sweep,
                                              int64_t now_ms);

// Whether `value` beats `best` (strictly; NaN never does).
bool IsBetterMetric(double value, const std::optional<double>& best,
                    bool maximize);

// Sets the run's best metric to the best point of `series` (the run's
// effective series of the sweep's metric), or none.
void SetBestFromSeries(RunRecord& run, const std::vector<MetricRecord>& series,
                       bool maximize);

// The attempts table's outcome of an attempt that ended by `transition` in
// state `after`: SUCCEEDED, FAILED, LEASE_EXPIRED or CANCELLED.
std::string AttemptOutcome(const RunTransition& transition, RunState after);

}  // namespace lora::coordinator::store_logic

#endif  // LORA_SWEEP_COORDINATOR_RUN_STORE_LOGIC_H_
