#include "loractl/results_data.h"

#include <algorithm>

#include "base/status_macros.h"
#include "loractl/display.h"
#include "loractl/sweep_watch.h"

namespace lora::loractl {
namespace {

// name -> step -> (epoch, value), the last report of each step winning.
using Latest =
    std::map<std::string, std::map<int64_t, std::pair<int32_t, double>>>;

Latest LatestByStep(const std::vector<v1::MetricPoint>& points) {
  Latest latest;
  for (const v1::MetricPoint& point : points) {
    latest[point.name()][point.step()] = {point.epoch(), point.value()};
  }
  return latest;
}

}  // namespace

std::string GroupTitle(const std::string& group_by) {
  return group_by == "lora.rank" ? "Rank (r)" : group_by;
}

RunSeries SeriesFromEvents(const std::vector<v1::SweepEvent>& events) {
  RunSeries series;
  for (const v1::SweepEvent& event : events) {
    if (event.has_metric()) {
      series[event.metric().run_id()].push_back(event.metric().point());
    }
  }
  return series;
}

ResultsData BuildResultsData(const v1::GetResultsResponse& results,
                             const RunSeries& series) {
  ResultsData data;
  data.sweep_id = results.sweep().sweep_id();
  data.name = results.sweep().name();
  data.state = SweepStateName(results.sweep().state());
  data.metric_name = results.metric().name();
  data.maximize = results.metric().goal() != v1::METRIC_GOAL_MINIMIZE;
  data.group_by = results.group_by();
  int32_t index = 0;
  for (const v1::RunResult& result : results.runs()) {
    RunResults run;
    run.run_id = result.run_id();
    run.index = index++;
    run.parameters = nlohmann::json::object();
    for (const auto& [key, value] : result.parameters()) {
      run.parameters[key] = ValueToJson(value);
    }
    run.state = RunStateName(result.state());
    if (result.best_epoch() > 0) {
      run.best_metric = result.best_metric();
      run.best_epoch = result.best_epoch();
    }
    run.counts = result.parameter_counts();

    std::map<int32_t, EpochRow> epochs;
    // The sweep metric's curve, from GetResults; the last point of an epoch
    // wins.
    std::map<int64_t, std::pair<int32_t, double>> curve;
    for (const v1::MetricPoint& point : result.metric_curve()) {
      curve[point.step()] = {point.epoch(), point.value()};
    }
    for (const auto& [step, point] : curve) {
      (void)step;
      if (point.first <= 0) continue;
      epochs[point.first].epoch = point.first;
      epochs[point.first].metric = point.second;
    }
    auto found = series.find(result.run_id());
    if (found != series.end()) {
      const Latest latest = LatestByStep(found->second);
      auto train = latest.find("train_loss");
      auto steps = latest.find("loss");
      if (train != latest.end()) {
        for (const auto& [step, point] : train->second) {
          (void)step;
          if (point.first <= 0) continue;
          epochs[point.first].epoch = point.first;
          epochs[point.first].train_loss = point.second;
        }
      } else if (steps != latest.end()) {
        std::map<int32_t, std::pair<double, int>> sums;
        for (const auto& [step, point] : steps->second) {
          (void)step;
          if (point.first <= 0) continue;
          sums[point.first].first += point.second;
          sums[point.first].second += 1;
        }
        for (const auto& [epoch, sum] : sums) {
          epochs[epoch].epoch = epoch;
          epochs[epoch].train_loss = sum.first / sum.second;
        }
      }
      const std::map<int64_t, std::pair<int32_t, double>>* losses =
          steps != latest.end()
              ? &steps->second
              : (train != latest.end() ? &train->second : nullptr);
      if (losses != nullptr) {
        for (const auto& [step, point] : *losses) {
          run.loss_curve.emplace_back(step, point.second);
        }
      }
      // Points of the sweep metric seen in the stream but not in the
      // curve (GetResults answered before them) fill remaining epochs.
      auto metric = latest.find(data.metric_name);
      if (metric != latest.end()) {
        for (const auto& [step, point] : metric->second) {
          (void)step;
          if (point.first <= 0 || epochs[point.first].metric.has_value()) {
            continue;
          }
          epochs[point.first].epoch = point.first;
          epochs[point.first].metric = point.second;
        }
      }
    }
    for (auto& [epoch, row] : epochs) {
      (void)epoch;
      run.epochs.push_back(row);
    }
    data.runs.push_back(std::move(run));
  }
  for (const v1::ResultGroup& group : results.groups()) {
    AblationGroup out;
    out.value = ValueToJson(group.value());
    out.runs = group.runs();
    out.mean = group.metric_mean();
    out.std = group.metric_std();
    out.min = group.metric_min();
    out.max = group.metric_max();
    out.trainable = group.trainable_parameters();
    out.total = group.total_parameters();
    out.trainable_percent = group.trainable_percent();
    data.groups.push_back(std::move(out));
  }
  return data;
}

absl::StatusOr<ResultsData> FetchResults(LoradClient* client,
                                         const std::string& sweep_id,
                                         const std::string& group_by) {
  LORA_ASSIGN_OR_RETURN(v1::GetResultsResponse results,
                        client->GetResults(sweep_id, group_by));
  LORA_ASSIGN_OR_RETURN(
      std::vector<v1::SweepEvent> events,
      ReplayEvents(client, sweep_id, /*include_metrics=*/true));
  return BuildResultsData(results, SeriesFromEvents(events));
}

}  // namespace lora::loractl
