// The data behind `loractl results` and `loractl plot`, in the shape of
// the seed experiment's tables: per run, its train loss and validation
// metric at the end of every epoch; per value of the grouping parameter
// (lora.rank by default), the best metric over the other parameters (mean,
// sample std, min, max over seeds) and the trainable parameters with their
// share of the model.
//
// Sources: GetResults (runs, best metrics, parameter counts, the sweep
// metric's curve, the ablation groups), and the runs' metric series from a
// WatchSweep replay (train loss by epoch and loss curves by step).
//
// Epoch values: the sweep metric of an epoch is its curve's last point with
// that epoch. The train loss of an epoch is the "train_loss" point of that
// epoch (the epoch mean lora-train reports; the last one when several), or,
// when a run reported none, the mean of its per-step "loss" points in that
// epoch. Later points for the same (name, step) replace earlier ones (a
// resumed attempt re-reports steps after its checkpoint).
#ifndef LORA_SWEEP_LORACTL_RESULTS_DATA_H_
#define LORA_SWEEP_LORACTL_RESULTS_DATA_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "lora/v1/sweep_service.pb.h"
#include "loractl/client.h"

namespace lora::loractl {

struct EpochRow {
  int32_t epoch = 0;
  std::optional<double> train_loss;
  std::optional<double> metric;
};

struct RunResults {
  std::string run_id;
  int32_t index = 0;          // position in the sweep
  nlohmann::json parameters;  // swept keys -> values
  std::string state;          // "SUCCEEDED", ...
  std::optional<double> best_metric;
  int32_t best_epoch = 0;
  v1::ParameterCounts counts;
  std::vector<EpochRow> epochs;  // by epoch
  // (step, loss): per-step "loss" points, or the "train_loss" points when
  // the run reported no per-step loss.
  std::vector<std::pair<int64_t, double>> loss_curve;
};

struct AblationGroup {
  nlohmann::json value;  // e.g. 4 for lora.rank; null for runs without it
  int32_t runs = 0;      // succeeded runs aggregated
  double mean = 0;
  double std = 0;
  double min = 0;
  double max = 0;
  int64_t trainable = 0;
  int64_t total = 0;
  double trainable_percent = 0;
};

struct ResultsData {
  std::string sweep_id;
  std::string name;
  std::string state;  // the sweep's
  std::string metric_name;
  bool maximize = true;
  std::string group_by;
  std::vector<RunResults> runs;
  std::vector<AblationGroup> groups;  // sorted by value, as lorad sends
};

// Metric points of every run, in stream order, keyed by run id.
using RunSeries = std::map<std::string, std::vector<v1::MetricPoint>>;

// Pure: shapes a GetResults answer and the runs' series as described at the
// top.
ResultsData BuildResultsData(const v1::GetResultsResponse& results,
                             const RunSeries& series);

// The series of every run from a replay of the sweep's events.
RunSeries SeriesFromEvents(const std::vector<v1::SweepEvent>& events);

// GetResults plus a replay of the sweep's metric events (ReplayEvents).
absl::StatusOr<ResultsData> FetchResults(LoradClient* client,
                                         const std::string& sweep_id,
                                         const std::string& group_by);

// The label of a group value in a table header: "Rank (r)" for lora.rank,
// else the key itself.
std::string GroupTitle(const std::string& group_by);

}  // namespace lora::loractl

#endif  // LORA_SWEEP_LORACTL_RESULTS_DATA_H_
