// Typed reading of YAML documents with errors that point at the user's file:
// every error reads "<source>:<line>: <dotted.key>: <problem>", where the
// problem says what was found and what was expected. Used by the training
// config (lora_core/train_config) and the sweep spec (sweep/sweep_spec).
#ifndef LORA_SWEEP_BASE_YAML_FIELDS_H_
#define LORA_SWEEP_BASE_YAML_FIELDS_H_

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lora {

// Parses one YAML document. Syntax errors become InvalidArgument
// "<source>:<line>: not valid YAML: ..."; an empty document (nothing, or
// only comments) is InvalidArgument "<source>: file is empty". Flow
// collections ([...], {...}) nested deeper than `max_depth` are rejected
// before parsing, so hostile input cannot exhaust the parser's stack.
absl::StatusOr<YAML::Node> LoadYamlDocument(absl::string_view text,
                                            const std::string& source,
                                            int max_depth = 64);

// The known name closest to `name` by edit distance, when it is close enough
// to be a plausible typo (distance <= max(1, |name| / 3)); empty otherwise.
std::string ClosestName(const std::string& name,
                        const std::vector<std::string>& known);

// Edit distance between two strings (bytes), counting a swap of two
// adjacent characters as one edit.
int EditDistance(absl::string_view a, absl::string_view b);

class YamlFields {
 public:
  using Handler =
      std::function<absl::Status(const YAML::Node&, const std::string&)>;

  explicit YamlFields(std::string source) : source_(std::move(source)) {}

  const std::string& source() const { return source_; }

  // "<source>:<line of node>: <key>: <problem>". A node built in code (no
  // position) prints without a line.
  absl::Status Error(const YAML::Node& node, const std::string& key,
                     const std::string& problem) const;

  // A node's value as it appears in messages: a scalar in double quotes,
  // anything else as compact YAML.
  static std::string Text(const YAML::Node& node);

  absl::StatusOr<int64_t> Int(const YAML::Node& node, const std::string& key,
                              int64_t minimum) const;
  absl::StatusOr<double> Number(const YAML::Node& node, const std::string& key,
                                double minimum, double maximum,
                                bool exclusive_minimum,
                                bool exclusive_maximum) const;
  absl::StatusOr<bool> Bool(const YAML::Node& node,
                            const std::string& key) const;
  absl::StatusOr<std::string> String(const YAML::Node& node,
                                     const std::string& key) const;
  absl::StatusOr<std::string> OneOf(
      const YAML::Node& node, const std::string& key,
      const std::vector<std::string>& allowed) const;
  // A list of strings; a single scalar counts as a list of one.
  absl::StatusOr<std::vector<std::string>> Strings(
      const YAML::Node& node, const std::string& key) const;

  // Calls `handlers[key]` for every key of a mapping, in file order. A key
  // given twice, a key that is not a scalar and an unknown key are errors;
  // an unknown key's message suggests the closest known one ("did you mean
  // rank?") and lists the known keys.
  absl::Status ForEachKey(const YAML::Node& map, const std::string& prefix,
                          const std::map<std::string, Handler>& handlers) const;

 private:
  std::string source_;
};

}  // namespace lora

#endif  // LORA_SWEEP_BASE_YAML_FIELDS_H_
