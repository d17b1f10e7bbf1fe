// Submitting a sweep: validate and expand the file (sweep/sweep_spec.h),
// then store it and its runs in one step. The core of SweepService's
// SubmitSweep, free of gRPC so it is tested directly against both stores.
//
// Idempotence: the sweep id is a hash of what the sweep trains, so
// submitting the same sweep again (even written differently) stores nothing
// and returns the existing sweep with `already_existed`; with
// `retry_failed`, its FAILED and CANCELLED runs go back to PENDING with a
// fresh attempt budget, and runs that succeeded are never trained again.
#ifndef LORA_SWEEP_COORDINATOR_SWEEP_SUBMISSION_H_
#define LORA_SWEEP_COORDINATOR_SWEEP_SUBMISSION_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/run_store.h"
#include "sweep/sweep_spec.h"

namespace lora::coordinator {

struct SubmitRequest {
  std::string spec_yaml;
  std::string source_name = "sweep.yaml";  // file name for messages
  bool dry_run = false;                    // validate and expand only
  bool retry_failed = false;
  int64_t now_ms = 0;
};

struct SubmitResult {
  SweepRecord sweep;
  // The sweep's runs in expansion order, as stored (or as they would be
  // stored, for a dry run).
  std::vector<RunRecord> runs;
  bool already_existed = false;
  int64_t requeued_runs = 0;
  int64_t duplicates_dropped = 0;  // random draws of an existing config
};

// Validation options for the coordinator's side: models are built-in names
// or BASE_CHECKPOINT artifacts it holds (their config.json read through
// `read_artifact_file(artifact_id, "config.json")`); data_dir must be a
// DATASET artifact it holds. Local paths are refused: they mean nothing on
// the workers' machines, so the client uploads them first.
sweep::SweepValidationOptions CoordinatorValidationOptions(
    RunStore* store, int64_t max_runs,
    std::function<absl::StatusOr<std::string>(const std::string& artifact_id,
                                              const std::string& path)>
        read_artifact_file);

// The records a validated sweep is stored as (runs PENDING at attempt 1).
SweepRecord ToSweepRecord(const sweep::ExpandedSweep& sweep,
                          const std::string& source_name, int64_t now_ms);
std::vector<RunRecord> ToRunRecords(const sweep::ExpandedSweep& sweep,
                                    int64_t now_ms);

// Validates, expands and (unless dry_run) stores. Errors: those of
// sweep::LoadSweep (InvalidArgument, ResourceExhausted), and store errors.
absl::StatusOr<SubmitResult> SubmitSweep(
    RunStore* store, const SubmitRequest& request,
    const sweep::SweepValidationOptions& options);

}  // namespace lora::coordinator

#endif  // LORA_SWEEP_COORDINATOR_SWEEP_SUBMISSION_H_
