// The seed experiment's tables from a sweep's results (results_data.h), in
// four formats:
//
// - table: aligned text for a terminal;
// - markdown: GitHub tables as the seed's README writes them (accuracies as
//   percentages, "mean ± std" when a group has several runs, the best group
//   in bold);
// - csv: exact values (no percentages, no rounding), one header row per
//   table; with several tables, a blank line between them;
// - json: one object with the selected tables, exact values.
//
// Tables: `epochs` (train loss and the sweep metric at the end of every
// epoch, per run), `ablation` (the sweep metric by group: mean, std, min,
// max over the group's succeeded runs) and `parameters` (trainable
// parameters by group, with total and percentage). Pure functions.
#ifndef LORA_SWEEP_LORACTL_TABLES_H_
#define LORA_SWEEP_LORACTL_TABLES_H_

#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "loractl/results_data.h"

namespace lora::loractl {

enum class ResultsFormat { kTable, kMarkdown, kCsv, kJson };
absl::StatusOr<ResultsFormat> ParseResultsFormat(const std::string& name);

enum class ResultsTables { kAll, kEpochs, kAblation, kParameters };
absl::StatusOr<ResultsTables> ParseResultsTables(const std::string& name);

std::string RenderResults(const ResultsData& data, ResultsFormat format,
                          ResultsTables tables = ResultsTables::kAll);

// The JSON form (what kJson prints).
nlohmann::json ResultsJson(const ResultsData& data,
                           ResultsTables tables = ResultsTables::kAll);

// Indexes of the groups with the best mean (ties all count) among groups
// with at least one run; empty when none has.
std::vector<size_t> BestGroups(const ResultsData& data);

}  // namespace lora::loractl

#endif  // LORA_SWEEP_LORACTL_TABLES_H_
