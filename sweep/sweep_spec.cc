#include "sweep/sweep_spec.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/file_util.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "base/yaml_fields.h"
#include "lora_core/splitmix64.h"
#include "lora_core/utf8.h"
#include "sweep/artifact_manifest.h"

namespace lora::sweep {
namespace {

using core::TrainConfig;
using Handler = YamlFields::Handler;

// A node that tests false: a default-constructed YAML::Node is a defined
// null, not an absent value.
YAML::Node Absent() { return YAML::Node(YAML::NodeType::Undefined); }

// Training keys a sweep may not set: the worker owns them, or the sweep sets
// them at its top level.
const std::map<std::string, std::string>& ReservedKeys() {
  static const auto* keys = new std::map<std::string, std::string>{
      {"task", "set task at the top level of the sweep"},
      {"data_dir", "set data_dir at the top level of the sweep"},
      {"metric", "set metric at the top level of the sweep"},
      {"device", "set resources.device"},
      {"threads", "set resources.cpu_threads"},
      {"output_dir", "the worker chooses each run's folder"},
      {"resume", "the worker resumes runs itself"},
      {"cache_dir", "the worker chooses its cache"},
      {"corpus_files",
       "files on one machine do not travel; put the corpus in data_dir"},
  };
  return *keys;
}

// A YAML value as JSON: integers, numbers and true/false as such (other YAML
// boolean spellings such as "off" stay strings: amp: off), lists and
// mappings recursively.
nlohmann::json ToJson(const YAML::Node& node) {
  if (node.IsSequence()) {
    nlohmann::json array = nlohmann::json::array();
    for (const YAML::Node& item : node) array.push_back(ToJson(item));
    return array;
  }
  if (node.IsMap()) {
    nlohmann::json object = nlohmann::json::object();
    for (const auto& entry : node) {
      object[entry.first.Scalar()] = ToJson(entry.second);
    }
    return object;
  }
  if (!node.IsScalar()) return nullptr;
  const std::string& text = node.Scalar();
  int64_t integer;
  double number;
  if (YAML::convert<int64_t>::decode(node, integer)) return integer;
  if (YAML::convert<double>::decode(node, number) && std::isfinite(number)) {
    return number;
  }
  if (text == "true") return true;
  if (text == "false") return false;
  return text;
}

// Appends (dotted key, value) for every leaf of a mapping; a value that is a
// mapping is descended into ("lora: {rank: 4}" gives "lora.rank").
absl::Status Flatten(const YamlFields& fields, const YAML::Node& map,
                     const std::string& prefix,
                     std::vector<std::pair<std::string, YAML::Node>>* out) {
  if (!map.IsMap()) {
    return fields.Error(
        map, prefix,
        "expected a mapping of keys, got " + YamlFields::Text(map));
  }
  std::set<std::string> seen;
  for (const auto& entry : map) {
    if (!entry.first.IsScalar()) {
      return fields.Error(
          entry.first, prefix,
          "keys must be plain names, got " + YamlFields::Text(entry.first));
    }
    const std::string key = prefix.empty()
                                ? entry.first.Scalar()
                                : prefix + "." + entry.first.Scalar();
    if (!seen.insert(entry.first.Scalar()).second) {
      return fields.Error(entry.first, key, "given twice");
    }
    if (entry.second.IsMap()) {
      LORA_RETURN_IF_ERROR(Flatten(fields, entry.second, key, out));
    } else {
      out->emplace_back(key, entry.second);
    }
  }
  return absl::OkStatus();
}

// Rejects keys the worker or the sweep's top level owns. `where` prefixes the
// key in messages ("fixed", "parameters", "points").
absl::Status CheckSweepableKey(const YamlFields& fields,
                               const std::string& where, const std::string& key,
                               const YAML::Node& node) {
  const std::string first = key.substr(0, key.find('.'));
  auto reserved = ReservedKeys().find(first);
  if (reserved != ReservedKeys().end()) {
    return fields.Error(node, where + "." + key,
                        "cannot be set per run: " + reserved->second);
  }
  return absl::OkStatus();
}

// Inserts `value` at a dotted key of a mapping built in code.
void SetDotted(YAML::Node root, const std::string& key,
               const YAML::Node& value) {
  const size_t dot = key.find('.');
  if (dot == std::string::npos) {
    root[key] = value;
    return;
  }
  const std::string head = key.substr(0, dot);
  if (!root[head].IsMap()) root[head] = YAML::Node(YAML::NodeType::Map);
  SetDotted(root[head], key.substr(dot + 1), value);
}

// Default goal of a metric: accuracy and BLEU up, losses down.
bool MaximizedByDefault(const std::string& metric) {
  return metric == "val_accuracy" || metric == "val_bleu";
}

std::vector<std::string> MetricsOfTask(const std::string& task) {
  if (task == "sst2" || task == "polarity") {
    return {"val_accuracy", "val_loss", "train_loss"};
  }
  if (task == "e2e") return {"val_bleu", "val_loss", "train_loss"};
  return {"val_loss", "val_perplexity", "train_loss"};
}

class SpecParser {
 public:
  SpecParser(const std::string& text, const std::string& source,
             const SweepValidationOptions& options)
      : fields_(source), options_(options) {
    spec_.source = source;
    spec_.text = text;
  }

  absl::StatusOr<SweepSpec> Parse() {
    const size_t invalid = core::FirstInvalidUtf8(spec_.text);
    if (invalid != std::string::npos) {
      const int64_t line = 1 + std::count(spec_.text.begin(),
                                          spec_.text.begin() + invalid, '\n');
      return absl::InvalidArgumentError(absl::StrCat(
          spec_.source, ":", line, ": not valid UTF-8 (byte ", invalid, ")"));
    }
    LORA_ASSIGN_OR_RETURN(YAML::Node root,
                          LoadYamlDocument(spec_.text, spec_.source));
    YAML::Node parameters = Absent(), points = Absent(), count_node = Absent(),
               seed_node = Absent();
    bool method_given = false;
    std::map<std::string, Handler> top = {
        {"name", StringInto(&spec_.name)},
        {"description",
         [&](const YAML::Node& node, const std::string& key) {
           return fields_.String(node, key).status();
         }},
        {"model",
         [&](const YAML::Node& node, const std::string& key) -> absl::Status {
           LORA_ASSIGN_OR_RETURN(std::string model, fields_.String(node, key));
           if (model.empty()) return fields_.Error(node, key, "is empty");
           spec_.model = node;
           return absl::OkStatus();
         }},
        {"task",
         [&](const YAML::Node& node, const std::string& key) -> absl::Status {
           LORA_ASSIGN_OR_RETURN(
               spec_.task,
               fields_.OneOf(node, key, {"sst2", "polarity", "text", "e2e"}));
           spec_.task_node = node;
           return absl::OkStatus();
         }},
        {"data_dir",
         [&](const YAML::Node& node, const std::string& key) -> absl::Status {
           LORA_ASSIGN_OR_RETURN(spec_.data_dir, fields_.String(node, key));
           spec_.data_dir_node = node;
           return absl::OkStatus();
         }},
        {"method",
         [&](const YAML::Node& node, const std::string& key) -> absl::Status {
           LORA_ASSIGN_OR_RETURN(
               std::string method,
               fields_.OneOf(node, key, {"grid", "random", "list"}));
           spec_.method = method == "grid"     ? SearchMethod::kGrid
                          : method == "random" ? SearchMethod::kRandom
                                               : SearchMethod::kList;
           method_given = true;
           return absl::OkStatus();
         }},
        {"parameters", Keep(&parameters)},
        {"points", Keep(&points)},
        {"fixed",
         [&](const YAML::Node& node, const std::string& key) -> absl::Status {
           // Flattened under "fixed" for messages, stored without it.
           LORA_RETURN_IF_ERROR(Flatten(fields_, node, key, &spec_.fixed));
           for (auto& entry : spec_.fixed) {
             entry.first = entry.first.substr(key.size() + 1);
           }
           return absl::OkStatus();
         }},
        {"resources",
         [&](const YAML::Node& node, const std::string& key) {
           return ParseResources(node, key);
         }},
        {"max_attempts",
         [&](const YAML::Node& node, const std::string& key) -> absl::Status {
           LORA_ASSIGN_OR_RETURN(spec_.max_attempts, fields_.Int(node, key, 1));
           return absl::OkStatus();
         }},
        {"metric",
         [&](const YAML::Node& node, const std::string& key) {
           spec_.metric_node = node;
           return ParseMetric(node, key);
         }},
        {"count", Keep(&count_node)},
        {"seed", Keep(&seed_node)},
        {"priority",
         [&](const YAML::Node& node, const std::string& key) -> absl::Status {
           LORA_ASSIGN_OR_RETURN(spec_.priority,
                                 fields_.Int(node, key, -1000000));
           return absl::OkStatus();
         }},
    };
    LORA_RETURN_IF_ERROR(fields_.ForEachKey(root, "", top));
    (void)method_given;

    for (const char* required : {"name", "task"}) {
      if (!root[required]) {
        return absl::InvalidArgumentError(absl::StrCat(
            spec_.source, ": ", required, ": required key is missing"));
      }
    }
    if (spec_.name.empty()) {
      return fields_.Error(root["name"], "name", "is empty");
    }
    LORA_RETURN_IF_ERROR(
        ParseSearch(parameters, points, count_node, seed_node));
    LORA_RETURN_IF_ERROR(CheckFixed());
    if (!spec_.model.IsDefined() && !Swept("model")) {
      return absl::InvalidArgumentError(absl::StrCat(
          spec_.source,
          ": model: required key is missing (give it at the top level or "
          "sweep it in parameters)"));
    }
    LORA_RETURN_IF_ERROR(CheckMetric());
    LORA_RETURN_IF_ERROR(CheckDataDir());
    return spec_;
  }

 private:
  Handler StringInto(std::string* target) {
    return [this, target](const YAML::Node& node,
                          const std::string& key) -> absl::Status {
      LORA_ASSIGN_OR_RETURN(*target, fields_.String(node, key));
      return absl::OkStatus();
    };
  }

  static Handler Keep(YAML::Node* target) {
    return [target](const YAML::Node& node, const std::string&) {
      *target = node;
      return absl::OkStatus();
    };
  }

  bool Swept(const std::string& key) const {
    for (const ParameterDomain& domain : spec_.parameters) {
      if (domain.key == key) return true;
    }
    for (const YAML::Node& point : spec_.points) {
      if (point[key]) return true;
    }
    return false;
  }

  absl::Status ParseResources(const YAML::Node& node, const std::string& key) {
    ResourceSpec& r = spec_.resources;
    YAML::Node gpus_node = Absent();
    std::map<std::string, Handler> handlers = {
        {"device",
         [&](const YAML::Node& value, const std::string& name) -> absl::Status {
           LORA_ASSIGN_OR_RETURN(r.device,
                                 fields_.OneOf(value, name, {"cpu", "cuda"}));
           return absl::OkStatus();
         }},
        {"gpus",
         [&](const YAML::Node& value, const std::string& name) -> absl::Status {
           LORA_ASSIGN_OR_RETURN(r.gpus, fields_.Int(value, name, 0));
           gpus_node = value;
           return absl::OkStatus();
         }},
        {"cpu_threads",
         [&](const YAML::Node& value, const std::string& name) -> absl::Status {
           LORA_ASSIGN_OR_RETURN(r.cpu_threads, fields_.Int(value, name, 0));
           return absl::OkStatus();
         }},
        {"worker_labels",
         [&](const YAML::Node& value, const std::string& name) -> absl::Status {
           std::vector<std::pair<std::string, YAML::Node>> labels;
           LORA_RETURN_IF_ERROR(Flatten(fields_, value, name, &labels));
           for (const auto& [label, label_value] : labels) {
             LORA_ASSIGN_OR_RETURN(std::string text,
                                   fields_.String(label_value, label));
             r.worker_labels[label.substr(name.size() + 1)] = text;
           }
           return absl::OkStatus();
         }},
    };
    LORA_RETURN_IF_ERROR(fields_.ForEachKey(node, key, handlers));
    if (r.device == "cpu" && r.gpus != 0) {
      return fields_.Error(gpus_node, key + ".gpus",
                           absl::StrCat("expected 0 with device cpu, got ",
                                        r.gpus, " (set device: cuda)"));
    }
    if (r.device == "cuda" && !gpus_node) r.gpus = 1;
    if (r.device == "cuda" && r.gpus < 1) {
      return fields_.Error(gpus_node, key + ".gpus",
                           "expected at least 1 with device cuda, got 0");
    }
    return absl::OkStatus();
  }

  absl::Status ParseMetric(const YAML::Node& node, const std::string& key) {
    bool goal_given = false;
    std::map<std::string, Handler> handlers = {
        {"name", StringInto(&spec_.metric_name)},
        {"goal",
         [&](const YAML::Node& value, const std::string& name) -> absl::Status {
           LORA_ASSIGN_OR_RETURN(
               std::string goal,
               fields_.OneOf(value, name, {"maximize", "minimize"}));
           spec_.metric_maximize = goal == "maximize";
           goal_given = true;
           return absl::OkStatus();
         }},
    };
    LORA_RETURN_IF_ERROR(fields_.ForEachKey(node, key, handlers));
    if (spec_.metric_name.empty()) {
      return fields_.Error(node, key + ".name", "required key is missing");
    }
    if (!goal_given) {
      spec_.metric_maximize = MaximizedByDefault(spec_.metric_name);
    }
    return absl::OkStatus();
  }

  absl::Status CheckMetric() {
    if (spec_.metric_name.empty()) return absl::OkStatus();
    const std::vector<std::string> known = MetricsOfTask(spec_.task);
    for (const std::string& name : known) {
      if (name == spec_.metric_name) return absl::OkStatus();
    }
    const std::string close = ClosestName(spec_.metric_name, known);
    return fields_.Error(
        spec_.metric_node["name"], "metric.name",
        absl::StrCat("task ", spec_.task, " reports ",
                     absl::StrJoin(known, ", "), "; got \"", spec_.metric_name,
                     "\"",
                     close.empty() ? "" : " (did you mean " + close + "?)"));
  }

  absl::Status CheckDataDir() {
    if (spec_.data_dir.empty()) {
      if (spec_.task == "sst2") {
        return absl::InvalidArgumentError(absl::StrCat(
            spec_.source,
            ": data_dir: required for task sst2 (a GLUE SST-2 folder with "
            "train.tsv and dev.tsv)"));
      }
      return absl::OkStatus();
    }
    if (!options_.check_data_dir) return absl::OkStatus();
    absl::Status status = options_.check_data_dir(spec_.data_dir);
    if (!status.ok()) {
      return fields_.Error(spec_.data_dir_node, "data_dir",
                           std::string(status.message()));
    }
    return absl::OkStatus();
  }

  absl::Status CheckFixed() {
    std::map<std::string, int> swept_lines;
    for (const ParameterDomain& domain : spec_.parameters) {
      swept_lines[domain.key] = domain.node.Mark().line + 1;
    }
    for (const auto& [key, node] : spec_.fixed) {
      if (key == "model") {
        return fields_.Error(node, "fixed.model",
                             "set model at the top level, or sweep it in "
                             "parameters");
      }
      LORA_RETURN_IF_ERROR(CheckSweepableKey(fields_, "fixed", key, node));
      auto swept = swept_lines.find(key);
      if (swept != swept_lines.end()) {
        return fields_.Error(
            node, "fixed." + key,
            absl::StrCat("also swept in parameters (line ", swept->second,
                         "); give it in one place"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status ParseSearch(const YAML::Node& parameters,
                           const YAML::Node& points,
                           const YAML::Node& count_node,
                           const YAML::Node& seed_node) {
    const bool random = spec_.method == SearchMethod::kRandom;
    const bool list = spec_.method == SearchMethod::kList;
    if (!random && count_node) {
      return fields_.Error(count_node, "count", "only used by method: random");
    }
    if (!random && seed_node) {
      return fields_.Error(seed_node, "seed",
                           "only used by method: random (a training seed is "
                           "swept as parameters: {seed: [0, 1, 2]})");
    }
    if (list && parameters) {
      return fields_.Error(parameters, "parameters",
                           "not used by method: list; give points instead");
    }
    if (!list && points) {
      return fields_.Error(points, "points",
                           "only used by method: list; give parameters");
    }
    if (random) {
      if (!count_node) {
        return absl::InvalidArgumentError(
            absl::StrCat(spec_.source, ": count: required by method: random"));
      }
      LORA_ASSIGN_OR_RETURN(spec_.count, fields_.Int(count_node, "count", 1));
      if (spec_.count > options_.max_runs) {
        return absl::ResourceExhaustedError(absl::StrCat(
            spec_.source, ":", count_node.Mark().line + 1,
            ": count: ", spec_.count, " runs is more than the limit of ",
            options_.max_runs));
      }
      if (seed_node) {
        LORA_ASSIGN_OR_RETURN(int64_t seed, fields_.Int(seed_node, "seed", 0));
        spec_.random_seed = static_cast<uint64_t>(seed);
      }
      if (!parameters) {
        return absl::InvalidArgumentError(absl::StrCat(
            spec_.source, ": parameters: required by method: random"));
      }
    }
    if (list) return ParsePoints(points);
    if (parameters) return ParseParameters(parameters);
    return absl::OkStatus();
  }

  absl::Status ParseParameters(const YAML::Node& parameters) {
    std::vector<std::pair<std::string, YAML::Node>> flat;
    if (!parameters.IsMap()) {
      return fields_.Error(parameters, "parameters",
                           "expected a mapping of keys to lists of values, "
                           "got " +
                               YamlFields::Text(parameters));
    }
    // Flatten, but stop at a range mapping ({min, max, ...}) or a W&B-style
    // {values: [...]}: those are domains, not nested keys.
    std::function<absl::Status(const YAML::Node&, const std::string&)> walk =
        [&](const YAML::Node& map, const std::string& prefix) -> absl::Status {
      std::set<std::string> seen;
      for (const auto& entry : map) {
        if (!entry.first.IsScalar()) {
          return fields_.Error(entry.first, prefix, "keys must be plain names");
        }
        const std::string name = entry.first.Scalar();
        const std::string key = prefix.empty() ? name : prefix + "." + name;
        if (!seen.insert(name).second) {
          return fields_.Error(entry.first, "parameters." + key, "given twice");
        }
        const YAML::Node& value = entry.second;
        const bool domain_map =
            value.IsMap() && (value["min"] || value["max"] || value["values"]);
        if (value.IsMap() && !domain_map) {
          LORA_RETURN_IF_ERROR(walk(value, key));
        } else {
          flat.emplace_back(key, value);
        }
      }
      return absl::OkStatus();
    };
    LORA_RETURN_IF_ERROR(walk(parameters, ""));
    for (const auto& [key, node] : flat) {
      LORA_RETURN_IF_ERROR(CheckSweepableKey(fields_, "parameters", key, node));
      LORA_ASSIGN_OR_RETURN(ParameterDomain domain, ParseDomain(key, node));
      spec_.parameters.push_back(std::move(domain));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<ParameterDomain> ParseDomain(const std::string& key,
                                              const YAML::Node& node) {
    ParameterDomain domain;
    domain.key = key;
    domain.node = node;
    const std::string where = "parameters." + key;
    YAML::Node values = node;
    if (node.IsMap() && node["values"]) {
      if (node.size() != 1) {
        return fields_.Error(node, where,
                             "expected {values: [...]} with nothing else");
      }
      values = node["values"];
    }
    if (values.IsSequence()) {
      if (values.size() == 0) {
        return fields_.Error(values, where,
                             "the list of values is empty; give at least one");
      }
      for (const YAML::Node& value : values) domain.values.push_back(value);
      return domain;
    }
    if (values.IsMap()) {
      if (spec_.method != SearchMethod::kRandom) {
        return fields_.Error(node, where,
                             "a range ({min, max}) needs method: random; "
                             "grid takes a list of values");
      }
      return ParseRange(where, node, std::move(domain));
    }
    return fields_.Error(
        node, where,
        absl::StrCat("expected a list of values, got ", YamlFields::Text(node),
                     " (a single value belongs in fixed)"));
  }

  absl::StatusOr<ParameterDomain> ParseRange(const std::string& where,
                                             const YAML::Node& node,
                                             ParameterDomain domain) {
    NumericRange range;
    YAML::Node min_node = Absent(), max_node = Absent(),
               integer_node = Absent();
    std::string distribution = "uniform";
    const double kHuge = std::numeric_limits<double>::max();
    std::map<std::string, Handler> handlers = {
        {"min",
         [&](const YAML::Node& value, const std::string& name) -> absl::Status {
           LORA_ASSIGN_OR_RETURN(
               range.min,
               fields_.Number(value, name, -kHuge, kHuge, false, false));
           min_node = value;
           return absl::OkStatus();
         }},
        {"max",
         [&](const YAML::Node& value, const std::string& name) -> absl::Status {
           LORA_ASSIGN_OR_RETURN(
               range.max,
               fields_.Number(value, name, -kHuge, kHuge, false, false));
           max_node = value;
           return absl::OkStatus();
         }},
        {"distribution",
         [&](const YAML::Node& value, const std::string& name) -> absl::Status {
           LORA_ASSIGN_OR_RETURN(
               distribution,
               fields_.OneOf(value, name, {"uniform", "log_uniform"}));
           return absl::OkStatus();
         }},
        {"integer",
         [&](const YAML::Node& value, const std::string& name) -> absl::Status {
           LORA_ASSIGN_OR_RETURN(range.integer, fields_.Bool(value, name));
           integer_node = value;
           return absl::OkStatus();
         }},
    };
    LORA_RETURN_IF_ERROR(fields_.ForEachKey(node, where, handlers));
    if (!min_node || !max_node) {
      return fields_.Error(node, where,
                           std::string("a range needs both min and max; ") +
                               (min_node ? "max" : "min") + " is missing");
    }
    if (range.min > range.max) {
      return fields_.Error(max_node, where + ".max",
                           absl::StrCat("expected max >= min (", range.min,
                                        "), got ", range.max));
    }
    range.log_scale = distribution == "log_uniform";
    if (range.log_scale && range.min <= 0) {
      return fields_.Error(
          min_node, where + ".min",
          absl::StrCat("log_uniform needs min > 0, got ", range.min));
    }
    if (!integer_node) {
      int64_t unused;
      range.integer = YAML::convert<int64_t>::decode(min_node, unused) &&
                      YAML::convert<int64_t>::decode(max_node, unused);
    }
    // The bounds are values the key must accept.
    domain.values = {min_node, max_node};
    domain.range = range;
    return domain;
  }

  absl::Status ParsePoints(const YAML::Node& points) {
    if (!points) {
      return absl::InvalidArgumentError(
          absl::StrCat(spec_.source, ": points: required by method: list"));
    }
    if (!points.IsSequence() || points.size() == 0) {
      return fields_.Error(points, "points",
                           "expected a non-empty list of mappings, got " +
                               YamlFields::Text(points));
    }
    if (static_cast<int64_t>(points.size()) > options_.max_runs) {
      return absl::ResourceExhaustedError(
          absl::StrCat(spec_.source, ":", points.Mark().line + 1,
                       ": points: ", points.size(),
                       " runs is more than the limit of ", options_.max_runs));
    }
    for (const YAML::Node& point : points) {
      std::vector<std::pair<std::string, YAML::Node>> flat;
      LORA_RETURN_IF_ERROR(Flatten(fields_, point, "points", &flat));
      YAML::Node normalised(YAML::NodeType::Map);
      for (const auto& [key, value] : flat) {
        const std::string name = key.substr(std::string("points.").size());
        LORA_RETURN_IF_ERROR(CheckSweepableKey(fields_, "points", name, value));
        normalised[name] = value;
      }
      spec_.points.push_back(normalised);
    }
    return absl::OkStatus();
  }

  YamlFields fields_;
  const SweepValidationOptions& options_;
  SweepSpec spec_;
};

// One point of the search: swept key -> value.
using Assignment = std::vector<std::pair<std::string, YAML::Node>>;

YAML::Node NumberNode(double value, bool integer) {
  if (integer) return YAML::Node(static_cast<int64_t>(std::llround(value)));
  return YAML::Node(value);
}

class Expander {
 public:
  Expander(const SweepSpec& spec, const SweepValidationOptions& options)
      : spec_(spec), options_(options), fields_(spec.source) {}

  absl::StatusOr<ExpandedSweep> Expand() {
    LORA_ASSIGN_OR_RETURN(std::vector<Assignment> points, Points());
    ExpandedSweep sweep;
    sweep.spec = spec_;
    std::map<std::string, int64_t> seen;  // config hash -> index
    for (size_t i = 0; i < points.size(); ++i) {
      LORA_ASSIGN_OR_RETURN(ExpandedRun run, Resolve(points[i]));
      auto [where, added] = seen.emplace(run.config_hash, sweep.runs.size());
      if (!added) {
        if (spec_.method == SearchMethod::kRandom) {
          ++sweep.duplicates_dropped;
          continue;
        }
        return absl::InvalidArgumentError(
            absl::StrCat(spec_.source, ": ", Where(),
                         ": two runs would train the same config: ",
                         sweep.runs[where->second].parameters.dump(), " and ",
                         run.parameters.dump()));
      }
      run.index = static_cast<int64_t>(sweep.runs.size());
      sweep.runs.push_back(std::move(run));
    }
    nlohmann::json identity = {
        {"name", spec_.name},
        {"metric",
         {{"name", spec_.metric_name}, {"maximize", spec_.metric_maximize}}},
        {"max_attempts", spec_.max_attempts},
        {"resources",
         {{"device", spec_.resources.device},
          {"gpus", spec_.resources.gpus},
          {"cpu_threads", spec_.resources.cpu_threads},
          {"worker_labels", spec_.resources.worker_labels}}},
        {"runs", nlohmann::json::array()},
    };
    for (const ExpandedRun& run : sweep.runs) {
      identity["runs"].push_back(run.config_hash);
    }
    sweep.sweep_id = "sw-" + Sha256Hex(identity.dump()).substr(0, 20);
    for (ExpandedRun& run : sweep.runs) {
      run.run_id =
          "run-" +
          Sha256Hex(sweep.sweep_id + "/" + run.config_hash).substr(0, 20);
    }
    return sweep;
  }

 private:
  std::string Where() const {
    return spec_.method == SearchMethod::kList ? "points" : "parameters";
  }

  absl::StatusOr<std::vector<Assignment>> Points() {
    std::vector<Assignment> points;
    switch (spec_.method) {
      case SearchMethod::kGrid: {
        int64_t total = 1;
        std::vector<std::string> factors;
        for (const ParameterDomain& domain : spec_.parameters) {
          const int64_t n = static_cast<int64_t>(domain.values.size());
          factors.push_back(absl::StrCat(n));
          if (total > options_.max_runs / n) {
            return absl::ResourceExhaustedError(absl::StrCat(
                spec_.source, ":",
                spec_.parameters.front().node.Mark().line + 1,
                ": parameters: the grid (", absl::StrJoin(factors, " x "),
                " ...) has more runs than the limit of ", options_.max_runs));
          }
          total *= n;
        }
        std::vector<size_t> digits(spec_.parameters.size(), 0);
        for (int64_t i = 0; i < total; ++i) {
          Assignment point;
          for (size_t p = 0; p < spec_.parameters.size(); ++p) {
            point.emplace_back(spec_.parameters[p].key,
                               spec_.parameters[p].values[digits[p]]);
          }
          points.push_back(std::move(point));
          // The last parameter varies fastest (like itertools.product).
          for (size_t p = digits.size(); p-- > 0;) {
            if (++digits[p] < spec_.parameters[p].values.size()) break;
            digits[p] = 0;
          }
        }
        break;
      }
      case SearchMethod::kRandom: {
        core::SplitMix64 random(spec_.random_seed);
        for (int64_t i = 0; i < spec_.count; ++i) {
          Assignment point;
          for (const ParameterDomain& domain : spec_.parameters) {
            if (!domain.range) {
              point.emplace_back(
                  domain.key,
                  domain.values[random.Below(domain.values.size())]);
              continue;
            }
            const NumericRange& r = *domain.range;
            // 53 random bits: a uniform double in [0, 1).
            const double u =
                static_cast<double>(random.Next() >> 11) * 0x1.0p-53;
            double value =
                r.log_scale ? std::exp(std::log(r.min) +
                                       u * (std::log(r.max) - std::log(r.min)))
                            : r.min + u * (r.max - r.min);
            value = std::min(std::max(value, r.min), r.max);
            point.emplace_back(domain.key, NumberNode(value, r.integer));
          }
          points.push_back(std::move(point));
        }
        break;
      }
      case SearchMethod::kList:
        for (const YAML::Node& node : spec_.points) {
          Assignment point;
          for (const auto& entry : node) {
            point.emplace_back(entry.first.Scalar(), entry.second);
          }
          points.push_back(std::move(point));
        }
        break;
    }
    if (static_cast<int64_t>(points.size()) > options_.max_runs) {
      return absl::ResourceExhaustedError(
          absl::StrCat(spec_.source, ": ", Where(), ": ", points.size(),
                       " runs is more than the limit of ", options_.max_runs));
    }
    // Every value of every domain must be valid on its own, even one that a
    // random draw happens to skip.
    for (const ParameterDomain& domain : spec_.parameters) {
      for (const YAML::Node& value : domain.values) {
        LORA_RETURN_IF_ERROR(Resolve({{domain.key, value}}).status());
      }
    }
    return points;
  }

  // The node of `key` in this point or in fixed (undefined if neither).
  YAML::Node NodeOf(const Assignment& point, const std::string& key) const {
    for (const auto& [name, node] : point) {
      if (name == key) return node;
    }
    for (const auto& [name, node] : spec_.fixed) {
      if (name == key) return node;
    }
    return Absent();
  }

  absl::StatusOr<core::ModelConfig> ResolveModel(const std::string& model,
                                                 const YAML::Node& node) {
    auto cached = models_.find(model);
    if (cached != models_.end()) return cached->second;
    absl::StatusOr<core::ModelConfig> config = core::BuiltinModelConfig(model);
    if (!config.ok() && options_.resolve_model) {
      config = options_.resolve_model(model);
    }
    if (!config.ok()) {
      const std::string close = ClosestName(model, core::BuiltinModelNames());
      return fields_.Error(
          node, "model",
          absl::StrCat("unknown model \"", model,
                       "\": ", config.status().message(),
                       close.empty() ? "" : " (did you mean " + close + "?)",
                       "; expected a built-in name (",
                       absl::StrJoin(core::BuiltinModelNames(), ", "),
                       "), a checkpoint folder or an uploaded artifact id"));
    }
    models_.emplace(model, *config);
    return *config;
  }

  absl::StatusOr<ExpandedRun> Resolve(const Assignment& point) {
    YAML::Node root(YAML::NodeType::Map);
    YAML::Node model_node = NodeOf(point, "model");
    if (!model_node) model_node = spec_.model;
    if (!model_node) {
      return absl::InvalidArgumentError(absl::StrCat(
          spec_.source, ": model: a point of the sweep has no model"));
    }
    root["model"] = model_node;
    root["task"] = spec_.task_node;
    if (!spec_.data_dir.empty()) root["data_dir"] = spec_.data_dir_node;
    root["device"] = spec_.resources.device;
    if (!spec_.metric_name.empty()) {
      root["metric"]["name"] = spec_.metric_name;
      root["metric"]["goal"] = spec_.metric_maximize ? "maximize" : "minimize";
    }
    for (const auto& [key, node] : spec_.fixed) SetDotted(root, key, node);
    for (const auto& [key, node] : point) {
      if (key != "model") SetDotted(root, key, node);
    }
    LORA_ASSIGN_OR_RETURN(TrainConfig config,
                          core::ParseTrainConfigNode(root, spec_.source));
    LORA_ASSIGN_OR_RETURN(core::ModelConfig model,
                          ResolveModel(config.model, model_node));

    const int64_t longest = core::LongestUsableSequence(model);
    if (config.max_seq_len > longest) {
      YAML::Node node = NodeOf(point, "max_seq_len");
      return fields_.Error(
          node, "max_seq_len",
          absl::StrCat("expected at most ", longest, " for ", config.model,
                       " (its longest usable sequence), got ",
                       config.max_seq_len));
    }
    if (!core::HeadFitsArchitecture(config.head, model.architecture)) {
      YAML::Node node = NodeOf(point, "head");
      return fields_.Error(
          node ? node : model_node, node ? "head" : "model",
          absl::StrCat("head \"", core::HeadKindName(config.head), "\" (task ",
                       spec_.task, ") does not fit ",
                       core::ArchitectureName(model.architecture), " model ",
                       config.model));
    }
    absl::StatusOr<core::ParameterCounts> counts =
        core::CountParameters(model, core::ToModelSpec(config));
    if (!counts.ok()) {
      YAML::Node node = NodeOf(point, "lora.target_modules");
      return fields_.Error(node ? node : model_node,
                           node ? "lora.target_modules" : "model",
                           std::string(counts.status().message()));
    }

    ExpandedRun run;
    run.parameters = nlohmann::json::object();
    for (const auto& [key, node] : point) run.parameters[key] = ToJson(node);
    if (spec_.resources.cpu_threads > 0) {
      config.threads = spec_.resources.cpu_threads;
    }
    run.config = config;
    run.config_yaml = core::TrainConfigToYaml(config);
    TrainConfig identity = config;
    identity.threads = 1;
    identity.device = "cpu";
    identity.output_dir.clear();
    identity.cache_dir.clear();
    identity.resume = true;
    run.config_hash = Sha256Hex(core::TrainConfigToYaml(identity));
    run.counts = *counts;
    run.model_config = model;
    return run;
  }

  const SweepSpec& spec_;
  const SweepValidationOptions& options_;
  YamlFields fields_;
  std::map<std::string, core::ModelConfig> models_;
};

}  // namespace

std::string SearchMethodName(SearchMethod method) {
  switch (method) {
    case SearchMethod::kGrid:
      return "grid";
    case SearchMethod::kRandom:
      return "random";
    case SearchMethod::kList:
      return "list";
  }
  return "grid";
}

SweepValidationOptions LocalValidationOptions() {
  SweepValidationOptions options;
  options.resolve_model =
      [](const std::string& model) -> absl::StatusOr<core::ModelConfig> {
    if (IsArtifactId(model)) {
      return absl::FailedPreconditionError(
          "an artifact id is checked by the coordinator, not locally");
    }
    const std::string folder = ExpandHome(model);
    std::error_code error;
    if (!std::filesystem::is_directory(folder, error)) {
      return absl::NotFoundError("no built-in config or folder of that name");
    }
    return core::LoadModelConfigFromDirectory(folder);
  };
  options.check_data_dir = [](const std::string& data_dir) -> absl::Status {
    if (IsArtifactId(data_dir)) return absl::OkStatus();
    std::error_code error;
    if (!std::filesystem::is_directory(ExpandHome(data_dir), error)) {
      return absl::NotFoundError("\"" + data_dir + "\" is not a folder");
    }
    return absl::OkStatus();
  };
  return options;
}

absl::StatusOr<SweepSpec> ParseSweepSpec(
    const std::string& text, const std::string& source,
    const SweepValidationOptions& options) {
  return SpecParser(text, source, options).Parse();
}

absl::StatusOr<ExpandedSweep> ExpandSweep(
    const SweepSpec& spec, const SweepValidationOptions& options) {
  return Expander(spec, options).Expand();
}

absl::StatusOr<ExpandedSweep> LoadSweep(const std::string& text,
                                        const std::string& source,
                                        const SweepValidationOptions& options) {
  LORA_ASSIGN_OR_RETURN(SweepSpec spec, ParseSweepSpec(text, source, options));
  return ExpandSweep(spec, options);
}

}  // namespace lora::sweep
