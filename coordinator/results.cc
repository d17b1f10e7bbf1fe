#include "coordinator/results.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status_macros.h"
#include "coordinator/proto_convert.h"
#include "sweep/run_proto.h"

namespace lora::coordinator {
namespace {

struct Group {
  nlohmann::json value;
  std::vector<double> metrics;
  int64_t trainable = 0;
  int64_t total = 0;
};

// Orders group values: null first, then numbers numerically, then the rest
// by their JSON text.
bool ValueLess(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.is_null() != b.is_null()) return a.is_null();
  if (a.is_number() && b.is_number()) return a.get<double>() < b.get<double>();
  if (a.is_number() != b.is_number()) return a.is_number();
  return a.dump() < b.dump();
}

}  // namespace

absl::StatusOr<v1::GetResultsResponse> BuildResults(RunStore* store,
                                                    const std::string& sweep_id,
                                                    std::string group_by) {
  if (group_by.empty()) group_by = "lora.rank";
  LORA_ASSIGN_OR_RETURN(SweepRecord sweep, store->GetSweep(sweep_id));
  v1::GetResultsResponse response;
  *response.mutable_sweep() = ToProto(sweep);
  *response.mutable_metric() = response.sweep().metric();
  response.set_group_by(group_by);
  RunFilter filter;
  filter.sweep_id = sweep_id;
  filter.limit = std::max<int64_t>(1, sweep.counts.total());
  LORA_ASSIGN_OR_RETURN(std::vector<RunRecord> runs, store->ListRuns(filter));
  std::map<std::string, Group> groups;  // keyed by the value's JSON text
  for (const RunRecord& run : runs) {
    v1::RunResult& result = *response.add_runs();
    const v1::Run proto = ToProto(run);
    result.set_run_id(run.run_id);
    *result.mutable_parameters() = proto.parameters();
    result.set_state(proto.state());
    *result.mutable_parameter_counts() = proto.parameter_counts();
    if (run.best_metric) result.set_best_metric(*run.best_metric);
    result.set_best_epoch(static_cast<int32_t>(run.best_epoch));
    LORA_ASSIGN_OR_RETURN(std::vector<MetricRecord> series,
                          store->ReadMetricSeries(run.run_id, ""));
    std::map<std::string, const MetricRecord*> last;
    for (const MetricRecord& record : series) {
      const MetricRecord*& latest = last[record.point.name];
      if (latest == nullptr || record.point.step >= latest->point.step) {
        latest = &record;
      }
      if (record.point.name == sweep.metric_name) {
        *result.add_metric_curve() = ToProto(record.point);
      }
    }
    for (const auto& [name, record] : last) {
      (*result.mutable_final_metrics())[name] = record->point.value;
    }
    nlohmann::json parameters =
        nlohmann::json::parse(run.parameters_json, nullptr, false);
    nlohmann::json value = nullptr;
    if (parameters.is_object() && parameters.contains(group_by)) {
      value = parameters[group_by];
    }
    Group& group = groups[value.dump()];
    group.value = value;
    group.trainable = std::max(group.trainable, run.counts.trainable);
    group.total = std::max(group.total, run.counts.total);
    if (run.lifecycle.state == RunState::kSucceeded && run.best_metric &&
        !std::isnan(*run.best_metric)) {
      group.metrics.push_back(*run.best_metric);
    }
  }
  std::vector<Group*> ordered;
  for (auto& [key, group] : groups) ordered.push_back(&group);
  std::sort(ordered.begin(), ordered.end(), [](const Group* a, const Group* b) {
    return ValueLess(a->value, b->value);
  });
  for (const Group* group : ordered) {
    v1::ResultGroup& out = *response.add_groups();
    *out.mutable_value() = sweep::JsonToValue(group->value);
    out.set_runs(static_cast<int32_t>(group->metrics.size()));
    if (!group->metrics.empty()) {
      double sum = 0;
      for (double m : group->metrics) sum += m;
      const double mean = sum / group->metrics.size();
      double squares = 0;
      for (double m : group->metrics) squares += (m - mean) * (m - mean);
      out.set_metric_mean(mean);
      out.set_metric_std(group->metrics.size() > 1
                             ? std::sqrt(squares / (group->metrics.size() - 1))
                             : 0.0);
      out.set_metric_min(
          *std::min_element(group->metrics.begin(), group->metrics.end()));
      out.set_metric_max(
          *std::max_element(group->metrics.begin(), group->metrics.end()));
    }
    out.set_trainable_parameters(group->trainable);
    out.set_total_parameters(group->total);
    if (group->total > 0) {
      out.set_trainable_percent(100.0 * group->trainable / group->total);
    }
  }
  return response;
}

}  // namespace lora::coordinator
