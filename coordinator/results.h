// GetResults: the seed's tables from the store — per-run final and best
// metrics with parameter counts and the metric curve, and the ablation table
// grouped by one swept parameter (mean, sample std, min and max of the best
// metric over the other parameters, e.g. seeds).
#ifndef LORA_SWEEP_COORDINATOR_RESULTS_H_
#define LORA_SWEEP_COORDINATOR_RESULTS_H_

#include <string>

#include "absl/status/statusor.h"
#include "coordinator/run_store.h"
#include "lora/v1/sweep_service.pb.h"

namespace lora::coordinator {

// `group_by` defaults to "lora.rank". Groups aggregate SUCCEEDED runs that
// have a best metric; runs without the grouping parameter fall in a group
// whose value is null. Groups are sorted by value (numbers numerically).
absl::StatusOr<v1::GetResultsResponse> BuildResults(RunStore* store,
                                                    const std::string& sweep_id,
                                                    std::string group_by);

}  // namespace lora::coordinator

#endif  // LORA_SWEEP_COORDINATOR_RESULTS_H_
