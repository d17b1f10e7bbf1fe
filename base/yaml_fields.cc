#include "base/yaml_fields.h"

#include <algorithm>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"

namespace lora {
namespace {

// Deepest nesting of flow collections, ignoring quoted text and comments.
int FlowDepth(absl::string_view text) {
  int depth = 0, deepest = 0;
  char quote = 0;
  bool comment = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (comment) {
      if (c == '\n') comment = false;
      continue;
    }
    if (quote != 0) {
      if (c == '\\' && quote == '"') {
        ++i;
      } else if (c == quote) {
        quote = 0;
      }
      continue;
    }
    if (c == '"' || c == '\'') {
      // A quote opens a quoted scalar only at the start of a token.
      if (i == 0 || absl::string_view(" \t\n[{,:").find(text[i - 1]) !=
                        absl::string_view::npos) {
        quote = c;
      }
    } else if (c == '#' && (i == 0 || text[i - 1] == ' ' ||
                            text[i - 1] == '\t' || text[i - 1] == '\n')) {
      comment = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

absl::StatusOr<YAML::Node> LoadYamlDocument(absl::string_view text,
                                            const std::string& source,
                                            int max_depth) {
  if (FlowDepth(text) > max_depth) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": collections nested more than ", max_depth, " levels deep"));
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& error) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ":", error.mark.line + 1, ": not valid YAML: ", error.msg));
  }
  if (!root.IsDefined() || root.IsNull()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": file is empty"));
  }
  return root;
}

int EditDistance(absl::string_view a, absl::string_view b) {
  // Optimal string alignment: insertions, deletions, substitutions and
  // transpositions of adjacent characters ("rnak" -> "rank") cost 1.
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = static_cast<int>(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = static_cast<int>(j);
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1,
                          d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

std::string ClosestName(const std::string& name,
                        const std::vector<std::string>& known) {
  const int limit = std::max<int>(1, static_cast<int>(name.size()) / 3);
  std::string best;
  int best_distance = limit + 1;
  for (const std::string& candidate : known) {
    const int distance = EditDistance(name, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

absl::Status YamlFields::Error(const YAML::Node& node, const std::string& key,
                               const std::string& problem) const {
  const int line = node.IsDefined() ? node.Mark().line : -1;
  if (line < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": ", key, ": ", problem));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(source_, ":", line + 1, ": ", key, ": ", problem));
}

std::string YamlFields::Text(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "nothing";
  if (node.IsScalar()) return "\"" + node.Scalar() + "\"";
  YAML::Emitter out;
  out << YAML::Flow << node;
  return out.c_str();
}

absl::StatusOr<int64_t> YamlFields::Int(const YAML::Node& node,
                                        const std::string& key,
                                        int64_t minimum) const {
  int64_t value;
  if (!node.IsScalar() || !YAML::convert<int64_t>::decode(node, value)) {
    return Error(node, key,
                 absl::StrCat("expected an integer, got ", Text(node)));
  }
  if (value < minimum) {
    return Error(
        node, key,
        absl::StrCat("expected an integer >= ", minimum, ", got ", value));
  }
  return value;
}

absl::StatusOr<double> YamlFields::Number(const YAML::Node& node,
                                          const std::string& key,
                                          double minimum, double maximum,
                                          bool exclusive_minimum,
                                          bool exclusive_maximum) const {
  double value;
  if (!node.IsScalar() || !YAML::convert<double>::decode(node, value) ||
      value != value) {
    return Error(node, key,
                 absl::StrCat("expected a number, got ", Text(node)));
  }
  const bool low = exclusive_minimum ? value <= minimum : value < minimum;
  const bool high = exclusive_maximum ? value >= maximum : value > maximum;
  if (low || high) {
    return Error(
        node, key,
        absl::StrCat("expected a number in ", exclusive_minimum ? "(" : "[",
                     minimum, ", ", maximum, exclusive_maximum ? ")" : "]",
                     ", got ", value));
  }
  return value;
}

absl::StatusOr<bool> YamlFields::Bool(const YAML::Node& node,
                                      const std::string& key) const {
  bool value;
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
    return Error(node, key,
                 absl::StrCat("expected true or false, got ", Text(node)));
  }
  return value;
}

absl::StatusOr<std::string> YamlFields::String(const YAML::Node& node,
                                               const std::string& key) const {
  if (!node.IsScalar()) {
    return Error(node, key,
                 absl::StrCat("expected a string, got ", Text(node)));
  }
  return node.Scalar();
}

absl::StatusOr<std::string> YamlFields::OneOf(
    const YAML::Node& node, const std::string& key,
    const std::vector<std::string>& allowed) const {
  LORA_ASSIGN_OR_RETURN(std::string value, String(node, key));
  for (const std::string& option : allowed) {
    if (value == option) return value;
  }
  const std::string close = ClosestName(value, allowed);
  return Error(
      node, key,
      absl::StrCat("expected one of ", absl::StrJoin(allowed, ", "), "; got \"",
                   value, "\"",
                   close.empty() ? "" : " (did you mean " + close + "?)"));
}

absl::StatusOr<std::vector<std::string>> YamlFields::Strings(
    const YAML::Node& node, const std::string& key) const {
  std::vector<std::string> values;
  if (node.IsScalar()) return std::vector<std::string>{node.Scalar()};
  if (!node.IsSequence()) {
    return Error(node, key,
                 absl::StrCat("expected a list of strings, got ", Text(node)));
  }
  for (const YAML::Node& item : node) {
    LORA_ASSIGN_OR_RETURN(std::string value, String(item, key));
    values.push_back(value);
  }
  return values;
}

absl::Status YamlFields::ForEachKey(
    const YAML::Node& map, const std::string& prefix,
    const std::map<std::string, Handler>& handlers) const {
  if (!map.IsMap()) {
    return Error(map, prefix.empty() ? "config" : prefix,
                 absl::StrCat("expected a mapping of keys, got ", Text(map)));
  }
  std::set<std::string> seen;
  for (const auto& entry : map) {
    // Keys built in code have no position; their values do.
    const YAML::Node& where =
        entry.first.Mark().line >= 0 ? entry.first : entry.second;
    if (!entry.first.IsScalar()) {
      return Error(
          where, prefix.empty() ? "config" : prefix,
          absl::StrCat("keys must be plain names, got ", Text(entry.first)));
    }
    const std::string name = entry.first.Scalar();
    const std::string key = prefix.empty() ? name : prefix + "." + name;
    if (!seen.insert(name).second) {
      return Error(where, key, "given twice");
    }
    auto handler = handlers.find(name);
    if (handler == handlers.end()) {
      std::vector<std::string> known;
      for (const auto& [known_key, unused] : handlers) {
        known.push_back(known_key);
      }
      const std::string close = ClosestName(name, known);
      return Error(
          where, key,
          absl::StrCat("unknown key",
                       close.empty() ? "" : "; did you mean " + close + "?",
                       " (known keys here: ", absl::StrJoin(known, ", "), ")"));
    }
    LORA_RETURN_IF_ERROR(handler->second(entry.second, key));
  }
  return absl::OkStatus();
}

}  // namespace lora
