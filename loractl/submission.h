// Getting a sweep file ready for lorad, as `loractl submit` does:
//
//   1. PrepareSweep: read the file and validate and expand it with the
//      coordinator's own library (sweep::LoadSweep with
//      sweep::LocalValidationOptions), so every mistake is reported here,
//      as "<file>:<line>: <key>: <problem>", before anything is sent; find
//      the local folders it names (sweep::FindLocalInputs).
//   2. UploadInputs: upload each folder once as a content-addressed
//      artifact (skipped when lorad already holds it) and rewrite the text
//      with the artifact ids in place of the paths (sweep::ReplaceScalars),
//      keeping every other byte and every line number.
//
// Thread-compatible.
#ifndef LORA_SWEEP_LORACTL_SUBMISSION_H_
#define LORA_SWEEP_LORACTL_SUBMISSION_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lora/v1/sweep_service.pb.h"
#include "loractl/artifact_transfer.h"
#include "loractl/client.h"
#include "sweep/local_inputs.h"
#include "sweep/sweep_spec.h"

namespace lora::loractl {

struct PreparedSweep {
  std::string source;  // the file name as the user gave it
  std::string text;    // the file's bytes
  sweep::ExpandedSweep expanded;
  std::vector<sweep::LocalInput> inputs;
};

// Errors: InvalidArgument for a file that cannot be read and for every
// validation error (the library's message); ResourceExhausted for a sweep
// with more runs than `max_runs` (the coordinator's default limit).
absl::StatusOr<PreparedSweep> PrepareSweep(const std::string& path,
                                           int64_t max_runs = 10000);

struct UploadedInput {
  sweep::LocalInput input;
  UploadedFolder upload;
};

// Uploads every distinct folder of `prepared.inputs` and returns the text
// to submit. `on_upload` is called once per folder, after it is on lorad.
absl::StatusOr<std::string> UploadInputs(
    LoradClient* client, const PreparedSweep& prepared,
    const std::function<void(const UploadedInput&)>& on_upload);

// The local expansion as SubmitSweep would answer a dry run: the sweep
// (id, name, metric, run count, state PENDING) and its runs with their
// parameters, resolved config and parameter counts.
v1::SubmitSweepResponse DryRunResponse(const sweep::ExpandedSweep& expanded);

}  // namespace lora::loractl

#endif  // LORA_SWEEP_LORACTL_SUBMISSION_H_
