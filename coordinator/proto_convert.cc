#include "coordinator/proto_convert.h"

#include <cmath>
#include <map>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "lora_core/train_config.h"
#include "sweep/run_proto.h"

namespace lora::coordinator {

google::protobuf::Timestamp ToTimestamp(int64_t unix_ms) {
  google::protobuf::Timestamp timestamp;
  timestamp.set_seconds(unix_ms / 1000);
  timestamp.set_nanos(static_cast<int32_t>(unix_ms % 1000) * 1000000);
  return timestamp;
}

int64_t FromTimestamp(const google::protobuf::Timestamp& timestamp) {
  return timestamp.seconds() * 1000 + timestamp.nanos() / 1000000;
}

v1::RunState ToProto(RunState state) {
  return static_cast<v1::RunState>(static_cast<int>(state));
}

absl::StatusOr<RunState> FromProto(v1::RunState state) {
  if (state < v1::RUN_STATE_PENDING || state > v1::RUN_STATE_CANCELLED) {
    return absl::InvalidArgumentError(
        absl::StrCat("state: expected a RunState, got ", state));
  }
  return static_cast<RunState>(static_cast<int>(state));
}

v1::SweepState ToProto(SweepState state) {
  return static_cast<v1::SweepState>(static_cast<int>(state));
}

v1::Sweep ToProto(const SweepRecord& sweep) {
  v1::Sweep out;
  out.set_sweep_id(sweep.sweep_id);
  out.set_name(sweep.name);
  out.set_spec_yaml(sweep.spec_yaml);
  out.set_state(ToProto(sweep.state));
  out.mutable_metric()->set_name(sweep.metric_name);
  out.mutable_metric()->set_goal(sweep.metric_maximize
                                     ? v1::METRIC_GOAL_MAXIMIZE
                                     : v1::METRIC_GOAL_MINIMIZE);
  out.set_priority(static_cast<int32_t>(sweep.priority));
  auto& counts = *out.mutable_run_counts();
  counts["PENDING"] = static_cast<int32_t>(sweep.counts.pending);
  counts["LEASED"] = static_cast<int32_t>(sweep.counts.leased);
  counts["RUNNING"] = static_cast<int32_t>(sweep.counts.running);
  counts["SUCCEEDED"] = static_cast<int32_t>(sweep.counts.succeeded);
  counts["FAILED"] = static_cast<int32_t>(sweep.counts.failed);
  counts["CANCELLED"] = static_cast<int32_t>(sweep.counts.cancelled);
  out.set_total_runs(static_cast<int32_t>(sweep.counts.total()));
  *out.mutable_create_time() = ToTimestamp(sweep.create_ms);
  if (sweep.end_ms > 0) *out.mutable_end_time() = ToTimestamp(sweep.end_ms);
  return out;
}

v1::RunConfig RunConfigFromYaml(const std::string& config_yaml,
                                const RunRecord& run) {
  v1::RunConfig out;
  absl::StatusOr<core::TrainConfig> parsed =
      core::ParseTrainConfig(config_yaml, run.run_id);
  v1::Resources& resources = *out.mutable_resources();
  resources.set_device(run.device == "cuda" ? v1::DEVICE_KIND_CUDA
                                            : v1::DEVICE_KIND_CPU);
  resources.set_gpus(static_cast<int32_t>(run.gpus));
  resources.set_cpu_threads(static_cast<int32_t>(run.cpu_threads));
  resources.mutable_worker_labels()->insert(run.worker_labels.begin(),
                                            run.worker_labels.end());
  if (!parsed.ok()) return out;
  v1::Resources kept = out.resources();
  out = sweep::TrainConfigToRunConfig(*parsed);
  *out.mutable_resources() = kept;
  return out;
}

v1::Run ToProto(const RunRecord& run) {
  v1::Run out;
  out.set_run_id(run.run_id);
  out.set_sweep_id(run.sweep_id);
  out.set_index(static_cast<int32_t>(run.index));
  *out.mutable_config() = RunConfigFromYaml(run.config_yaml, run);
  out.set_config_hash(run.config_hash);
  nlohmann::json parameters =
      nlohmann::json::parse(run.parameters_json, nullptr, false);
  if (parameters.is_object()) {
    for (const auto& [key, value] : parameters.items()) {
      (*out.mutable_parameters())[key] = sweep::JsonToValue(value);
    }
  }
  const RunLifecycle& life = run.lifecycle;
  out.set_state(ToProto(life.state));
  out.set_attempt(static_cast<int32_t>(life.attempt));
  out.set_max_attempts(static_cast<int32_t>(life.max_attempts));
  out.set_worker_id(life.worker_id);
  out.set_error(life.error);
  v1::ParameterCounts& counts = *out.mutable_parameter_counts();
  counts.set_total(run.counts.total);
  counts.set_trainable(run.counts.trainable);
  counts.set_lora(run.counts.lora);
  counts.set_head(run.counts.head);
  counts.set_base(run.counts.base);
  if (run.best_metric) out.set_best_metric(*run.best_metric);
  out.set_best_epoch(static_cast<int32_t>(run.best_epoch));
  out.set_step(run.step);
  out.set_checkpoint_artifact_id(life.checkpoint_artifact_id);
  out.set_adapter_artifact_id(life.adapter_artifact_id);
  *out.mutable_create_time() = ToTimestamp(run.create_ms);
  if (life.start_ms > 0) *out.mutable_start_time() = ToTimestamp(life.start_ms);
  if (life.end_ms > 0) *out.mutable_end_time() = ToTimestamp(life.end_ms);
  if (life.lease_expire_ms > 0) {
    *out.mutable_lease_expire_time() = ToTimestamp(life.lease_expire_ms);
  }
  return out;
}

v1::MetricPoint ToProto(const MetricPoint& point) {
  v1::MetricPoint out;
  out.set_name(point.name);
  out.set_step(point.step);
  out.set_epoch(static_cast<int32_t>(point.epoch));
  out.set_value(point.value);
  *out.mutable_time() = ToTimestamp(point.time_ms);
  return out;
}

MetricPoint FromProto(const v1::MetricPoint& point) {
  MetricPoint out;
  out.name = point.name();
  out.step = point.step();
  out.epoch = point.epoch();
  out.value = point.value();
  out.time_ms = FromTimestamp(point.time());
  return out;
}

v1::SweepEvent ToProto(const EventRecord& event) {
  v1::SweepEvent out;
  out.set_sequence(event.sequence);
  *out.mutable_time() = ToTimestamp(event.time_ms);
  switch (event.kind) {
    case EventRecord::Kind::kRunState: {
      v1::RunStateChange& change = *out.mutable_run_state();
      change.set_run_id(event.run_id);
      change.set_state(ToProto(event.run_state));
      change.set_attempt(static_cast<int32_t>(event.attempt));
      change.set_worker_id(event.worker_id);
      change.set_error(event.error);
      break;
    }
    case EventRecord::Kind::kMetric: {
      v1::RunMetric& metric = *out.mutable_metric();
      metric.set_run_id(event.run_id);
      metric.set_attempt(static_cast<int32_t>(event.attempt));
      *metric.mutable_point() = ToProto(event.metric);
      break;
    }
    case EventRecord::Kind::kSweepState:
      out.mutable_sweep_state()->set_state(ToProto(event.sweep_state));
      break;
  }
  return out;
}

v1::Artifact ToProto(const ArtifactRecord& artifact, bool with_files) {
  v1::Artifact out;
  out.set_artifact_id(artifact.artifact_id);
  out.set_kind(static_cast<v1::ArtifactKind>(artifact.kind));
  out.set_name(artifact.name);
  if (with_files) {
    for (const ArtifactFileRecord& file : artifact.files) {
      v1::ArtifactFile& entry = *out.add_files();
      entry.set_path(file.path);
      entry.set_size_bytes(file.size_bytes);
      entry.set_sha256(file.sha256);
    }
  }
  out.set_size_bytes(artifact.size_bytes);
  out.set_run_id(artifact.run_id);
  *out.mutable_create_time() = ToTimestamp(artifact.create_ms);
  return out;
}

namespace {

nlohmann::json FromValue(const google::protobuf::Value& value) {
  switch (value.kind_case()) {
    case google::protobuf::Value::kBoolValue:
      return value.bool_value();
    case google::protobuf::Value::kNumberValue: {
      const double number = value.number_value();
      if (number == static_cast<double>(static_cast<int64_t>(number)) &&
          std::abs(number) < 9e15) {
        return static_cast<int64_t>(number);
      }
      return number;
    }
    case google::protobuf::Value::kStringValue:
      return value.string_value();
    case google::protobuf::Value::kListValue: {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& item : value.list_value().values()) {
        list.push_back(FromValue(item));
      }
      return list;
    }
    case google::protobuf::Value::kStructValue: {
      nlohmann::json object = nlohmann::json::object();
      for (const auto& [key, item] : value.struct_value().fields()) {
        object[key] = FromValue(item);
      }
      return object;
    }
    default:
      return nullptr;
  }
}

}  // namespace

absl::StatusOr<std::string> SweepSpecToYaml(const v1::SweepSpec& spec) {
  // JSON is YAML: build the document as JSON and let the sweep parser read
  // it like any sweep file.
  nlohmann::json doc = nlohmann::json::object();
  doc["name"] = spec.name();
  if (!spec.model().empty()) doc["model"] = spec.model();
  doc["task"] = spec.task();
  if (!spec.data().empty()) doc["data_dir"] = spec.data();
  switch (spec.method()) {
    case v1::SEARCH_METHOD_UNSPECIFIED:
    case v1::SEARCH_METHOD_GRID:
      doc["method"] = "grid";
      break;
    case v1::SEARCH_METHOD_RANDOM:
      doc["method"] = "random";
      doc["count"] = spec.count();
      doc["seed"] = spec.random_seed();
      break;
    case v1::SEARCH_METHOD_LIST:
      doc["method"] = "list";
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("method: unknown SearchMethod ", spec.method()));
  }
  if (!spec.parameters().empty()) {
    nlohmann::json parameters = nlohmann::json::object();
    for (const auto& [key, domain] : spec.parameters()) {
      if (domain.has_range()) {
        const v1::NumericRange& range = domain.range();
        parameters[key] = {
            {"min", range.min()},
            {"max", range.max()},
            {"distribution", range.log_scale() ? "log_uniform" : "uniform"},
            {"integer", range.integer()}};
      } else {
        google::protobuf::Value list;
        *list.mutable_list_value() = domain.values();
        parameters[key] = FromValue(list);
      }
    }
    doc["parameters"] = parameters;
  }
  if (!spec.points().empty()) {
    nlohmann::json points = nlohmann::json::array();
    for (const google::protobuf::Struct& point : spec.points()) {
      google::protobuf::Value value;
      *value.mutable_struct_value() = point;
      points.push_back(FromValue(value));
    }
    doc["points"] = points;
  }
  if (!spec.fixed().empty()) {
    nlohmann::json fixed = nlohmann::json::object();
    for (const auto& [key, value] : spec.fixed()) fixed[key] = FromValue(value);
    doc["fixed"] = fixed;
  }
  if (spec.has_resources()) {
    const v1::Resources& r = spec.resources();
    nlohmann::json resources = {
        {"device", r.device() == v1::DEVICE_KIND_CUDA ? "cuda" : "cpu"}};
    if (r.gpus() > 0) resources["gpus"] = r.gpus();
    if (r.cpu_threads() > 0) resources["cpu_threads"] = r.cpu_threads();
    if (!r.worker_labels().empty()) {
      resources["worker_labels"] =
          nlohmann::json(std::map<std::string, std::string>(
              r.worker_labels().begin(), r.worker_labels().end()));
    }
    doc["resources"] = resources;
  }
  if (spec.max_attempts() > 0) doc["max_attempts"] = spec.max_attempts();
  if (spec.has_metric() && !spec.metric().name().empty()) {
    doc["metric"] = {{"name", spec.metric().name()}};
    if (spec.metric().goal() != v1::METRIC_GOAL_UNSPECIFIED) {
      doc["metric"]["goal"] = spec.metric().goal() == v1::METRIC_GOAL_MAXIMIZE
                                  ? "maximize"
                                  : "minimize";
    }
  }
  if (spec.priority() != 0) doc["priority"] = spec.priority();
  return doc.dump(2) + "\n";
}

}  // namespace lora::coordinator
