// Sweep files: parsing, validation and expansion into runs. Shared by the
// coordinator (lorad) and the CLI (loractl); no LibTorch.
//
// A sweep file (see README "Sweep file") names a model, a task, a search
// method and the parameters to sweep; every other training setting comes from
// `fixed` or the trainer's defaults. Expansion turns it into runs, each a
// fully resolved lora_core::TrainConfig with a content hash, and gives the
// sweep an id derived from what it trains, so submitting the same sweep twice
// finds the existing one.
//
// Every error is InvalidArgument (ResourceExhausted for a sweep larger than
// the run limit) with a message "<file>:<line>: <key>: <problem>" that says
// which value was found and what was expected.
#ifndef LORA_SWEEP_SWEEP_SWEEP_SPEC_H_
#define LORA_SWEEP_SWEEP_SWEEP_SPEC_H_

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lora_core/model_config.h"
#include "lora_core/model_layout.h"
#include "lora_core/train_config.h"

namespace lora::sweep {

enum class SearchMethod { kGrid, kRandom, kList };
std::string SearchMethodName(SearchMethod method);

// A numeric range of random search.
struct NumericRange {
  double min = 0;
  double max = 0;
  // Sample log-uniformly (min must then be > 0).
  bool log_scale = false;
  // Round samples to integers. Default: both bounds written as integers.
  bool integer = false;
};

// One swept parameter, keyed as in the sweep file ("lora.rank").
struct ParameterDomain {
  std::string key;
  // The explicit values (grid, random), or empty when `range` is set.
  std::vector<YAML::Node> values;
  std::optional<NumericRange> range;           // random only
  YAML::Node node{YAML::NodeType::Undefined};  // where it is written
};

// Where runs execute (the sweep's `resources`).
struct ResourceSpec {
  std::string device = "cpu";  // cpu | cuda
  int64_t gpus = 0;            // cuda: >= 1 (default 1); cpu: 0
  int64_t cpu_threads = 0;     // 0: the worker chooses
  std::map<std::string, std::string> worker_labels;
};

// A parsed, validated sweep file. Nodes keep their positions in the file so
// that later checks can still name the line.
struct SweepSpec {
  std::string source;  // file name used in messages
  std::string text;    // the file as submitted
  std::string name;
  YAML::Node model{YAML::NodeType::Undefined};  // undefined when swept
  std::string task;
  YAML::Node task_node{YAML::NodeType::Undefined};
  std::string data_dir;  // "" | a folder | an artifact id ("sha256:<hex>")
  YAML::Node data_dir_node{YAML::NodeType::Undefined};
  SearchMethod method = SearchMethod::kGrid;
  std::vector<ParameterDomain> parameters;  // grid and random, file order
  std::vector<YAML::Node> points;           // list: one mapping per run
  // `fixed`, flattened to dotted keys in file order.
  std::vector<std::pair<std::string, YAML::Node>> fixed;
  ResourceSpec resources;
  int64_t max_attempts = 3;
  std::string metric_name;  // "" = the task's default
  bool metric_maximize = true;
  YAML::Node metric_node{YAML::NodeType::Undefined};
  int64_t count = 0;  // random
  uint64_t random_seed = 0;
  int64_t priority = 0;
};

// How model and data_dir values are checked. The client checks local
// folders where they are; the coordinator checks artifact ids it holds.
struct SweepValidationOptions {
  // A sweep may expand to at most this many runs.
  int64_t max_runs = 10000;
  // The config of a model value that is not a built-in name. NotFound (or
  // any error, whose message is shown) when the value names nothing usable.
  std::function<absl::StatusOr<core::ModelConfig>(const std::string& model)>
      resolve_model;
  // OK when a data_dir value names usable data.
  std::function<absl::Status(const std::string& data_dir)> check_data_dir;
};

// Options for the side that holds the files: models are built-in names or
// local Hugging Face checkpoint folders (config.json), data_dir a local
// folder ("~/" expanded). Artifact ids are accepted unchecked (the
// coordinator checks them).
SweepValidationOptions LocalValidationOptions();

// One run of an expanded sweep.
struct ExpandedRun {
  int64_t index = 0;  // position in the expansion, from 0
  // The swept keys and their values for this run, e.g.
  // {"lora.rank": 4, "seed": 1} (numbers as numbers).
  nlohmann::json parameters;
  core::TrainConfig config;  // fully resolved
  std::string config_yaml;   // TrainConfigToYaml(config): what workers train
  // sha256 (hex) of the config minus what does not change the result
  // (threads, device, output and cache folders).
  std::string config_hash;
  std::string run_id;  // "run-" + 20 hex digits of sha256(sweep id, hash)
  core::ParameterCounts counts;
  core::ModelConfig model_config;
};

struct ExpandedSweep {
  SweepSpec spec;
  // "sw-" + 20 hex digits of the sha256 of the normalised sweep: its name,
  // metric, attempts, resources and the runs' config hashes in order. The
  // same sweep written differently (key order, comments, 1e-3 vs 0.001)
  // has the same id. Priority is not part of it.
  std::string sweep_id;
  std::vector<ExpandedRun> runs;
  // Random points that resolved to a config already drawn.
  int64_t duplicates_dropped = 0;
};

// Parses and validates a sweep file. Errors as described at the top.
absl::StatusOr<SweepSpec> ParseSweepSpec(const std::string& text,
                                         const std::string& source,
                                         const SweepValidationOptions& options);

// Expands a parsed spec into runs and checks every run: its training config
// (types, ranges, head and task), its model (resolved through `options`),
// max_seq_len against the model's longest usable sequence, LoRA targets that
// exist in the model, and the run count against `options.max_runs`.
absl::StatusOr<ExpandedSweep> ExpandSweep(
    const SweepSpec& spec, const SweepValidationOptions& options);

// ParseSweepSpec then ExpandSweep.
absl::StatusOr<ExpandedSweep> LoadSweep(const std::string& text,
                                        const std::string& source,
                                        const SweepValidationOptions& options);

}  // namespace lora::sweep

#endif  // LORA_SWEEP_SWEEP_SWEEP_SPEC_H_
