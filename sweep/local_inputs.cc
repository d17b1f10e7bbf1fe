#include "sweep/local_inputs.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "base/yaml_fields.h"
#include "lora_core/model_config.h"
#include "sweep/artifact_manifest.h"

namespace lora::sweep {
namespace {

// Walking a document visits an aliased node once per alias, so a small file
// can stand for a huge tree ("billion laughs"); a sweep never needs more.
constexpr int64_t kMaxNodesVisited = 1 << 20;

// Same rule as sweep_spec's local validation: "~" and "~/..." from $HOME.
bool IsFolder(const std::string& path) {
  std::error_code error;
  return std::filesystem::is_directory(path, error);
}

class InputFinder {
 public:
  explicit InputFinder(const std::string& source) : fields_(source) {}

  absl::StatusOr<std::vector<LocalInput>> Find(const YAML::Node& root) {
    if (!root.IsMap()) return inputs_;
    for (const auto& entry : root) {
      if (!entry.first.IsScalar()) continue;
      const std::string& key = entry.first.Scalar();
      const YAML::Node& value = entry.second;
      if (key == "data_dir") {
        LORA_RETURN_IF_ERROR(AddDataDir(value));
      } else if (key == "model") {
        AddModel(value, "model");
      } else if (key == "parameters" && value.IsMap()) {
        for (const auto& parameter : value) {
          if (!parameter.first.IsScalar() ||
              parameter.first.Scalar() != "model") {
            continue;
          }
          YAML::Node values = parameter.second;
          if (values.IsMap() && values["values"]) values = values["values"];
          if (!values.IsSequence()) continue;
          for (const YAML::Node& model : values) {
            AddModel(model, "parameters.model");
          }
        }
      } else if (key == "points" && value.IsSequence()) {
        int index = 0;
        for (const YAML::Node& point : value) {
          if (point.IsMap()) {
            for (const auto& field : point) {
              if (field.first.IsScalar() && field.first.Scalar() == "model") {
                AddModel(field.second,
                         absl::StrCat("points[", index, "].model"));
              }
            }
          }
          ++index;
        }
      }
    }
    return inputs_;
  }

 private:
  void Add(const YAML::Node& node, const std::string& key, std::string path,
           int kind) {
    LocalInput input;
    input.key = key;
    input.value = node.Scalar();
    input.path = std::move(path);
    input.kind = kind;
    input.line = node.Mark().line;
    input.column = node.Mark().column;
    inputs_.push_back(std::move(input));
  }

  absl::Status AddDataDir(const YAML::Node& node) {
    if (!node.IsScalar()) return absl::OkStatus();
    const std::string& value = node.Scalar();
    if (value.empty() || IsArtifactId(value)) return absl::OkStatus();
    std::string path = ExpandHome(value);
    if (!IsFolder(path)) {
      return fields_.Error(
          node, "data_dir",
          absl::StrCat("\"", value, "\" is not a folder",
                       path != value ? " (looked at " + path + ")" : "",
                       "; expected a local dataset folder or an uploaded "
                       "artifact id (sha256:...)"));
    }
    Add(node, "data_dir", std::move(path), kArtifactKindDataset);
    return absl::OkStatus();
  }

  // Mirrors how the sweep resolves a model: a built-in name first, then an
  // artifact id or a folder. Anything else is for ParseSweepSpec to report.
  void AddModel(const YAML::Node& node, const std::string& key) {
    if (!node.IsScalar()) return;
    const std::string& value = node.Scalar();
    if (value.empty() || IsArtifactId(value)) return;
    if (core::BuiltinModelConfig(value).ok()) return;
    std::string path = ExpandHome(value);
    if (!IsFolder(path)) return;
    Add(node, key, std::move(path), kArtifactKindBaseCheckpoint);
  }

  YamlFields fields_;
  std::vector<LocalInput> inputs_;
};

// --- ReplaceScalars ---------------------------------------------------------

using Position = std::pair<int, int>;  // (line, column), 0-based

struct ScalarAt {
  std::string value;
  bool in_flow = false;  // inside a [...] or {...} collection
};

std::string LineLabel(int line) { return absl::StrCat("line ", line + 1); }

// Indexes every scalar by position. The first visit of a node is where its
// text is (an anchor precedes its aliases), so it decides the context.
absl::Status IndexScalars(const YAML::Node& node, bool in_flow, int64_t* budget,
                          std::map<Position, ScalarAt>* out) {
  if (--*budget < 0) {
    return absl::InvalidArgumentError(
        "the document expands to too many nodes (aliases?) to rewrite");
  }
  if (node.IsScalar()) {
    const Position position(node.Mark().line, node.Mark().column);
    out->emplace(position, ScalarAt{node.Scalar(), in_flow});
    return absl::OkStatus();
  }
  const bool flow = in_flow || node.Style() == YAML::EmitterStyle::Flow;
  if (node.IsSequence()) {
    for (const YAML::Node& item : node) {
      LORA_RETURN_IF_ERROR(IndexScalars(item, flow, budget, out));
    }
  } else if (node.IsMap()) {
    for (const auto& entry : node) {
      LORA_RETURN_IF_ERROR(IndexScalars(entry.first, flow, budget, out));
      LORA_RETURN_IF_ERROR(IndexScalars(entry.second, flow, budget, out));
    }
  }
  return absl::OkStatus();
}

// `value` as a YAML double-quoted scalar.
std::string DoubleQuoted(const std::string& value) {
  std::string out = "\"";
  for (const char c : value) {
    const unsigned char byte = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (byte < 0x20 || byte == 0x7f) {
          char escaped[5];
          std::snprintf(escaped, sizeof(escaped), "\\x%02x", byte);
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  out += "\"";
  return out;
}

bool IsBlank(char c) { return c == ' ' || c == '\t'; }
bool IsLineEnd(char c) { return c == '\n' || c == '\r'; }
bool IsFlowIndicator(char c) {
  return c == ',' || c == '[' || c == ']' || c == '{' || c == '}';
}

struct Edit {
  size_t begin = 0;
  size_t end = 0;
  std::string text;
  Position position;
};

// The byte range of the scalar whose node starts at `offset`, on that line
// only. A range that does not hold the whole scalar (one folded over lines)
// is caught by the caller comparing it with the parsed value, and by the
// final check of the result.
absl::StatusOr<std::pair<size_t, size_t>> ScalarRange(const std::string& text,
                                                      size_t offset,
                                                      const ScalarAt& scalar,
                                                      int line) {
  auto refuse = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(LineLabel(line), ": cannot replace \"",
                     absl::CEscape(scalar.value), "\": ", why));
  };
  const size_t n = text.size();
  size_t i = offset;
  // Node properties (an anchor "&name", a tag "!tag") come before the
  // scalar; they stay, only the scalar is replaced.
  while (i < n && (text[i] == '&' || text[i] == '!')) {
    while (i < n && !IsBlank(text[i]) && !IsLineEnd(text[i])) ++i;
    while (i < n && IsBlank(text[i])) ++i;
  }
  if (i >= n || IsLineEnd(text[i]) || text[i] == '#') {
    return refuse("the value starts on a later line than its anchor or tag");
  }
  const size_t begin = i;
  const char first = text[i];
  if (first == '|' || first == '>') {
    return refuse("block scalars (| or >) span several lines");
  }
  if (first == '*') return refuse("it is written as an alias");
  if (first == '"') {
    for (++i; i < n && !IsLineEnd(text[i]); ++i) {
      if (text[i] == '\\') {
        ++i;
        if (i >= n || IsLineEnd(text[i])) break;
      } else if (text[i] == '"') {
        return std::make_pair(begin, i + 1);
      }
    }
    return refuse("the quoted value continues on the next line");
  }
  if (first == '\'') {
    for (++i; i < n && !IsLineEnd(text[i]); ++i) {
      if (text[i] != '\'') continue;
      if (i + 1 < n && text[i + 1] == '\'') {
        ++i;  // '' is an escaped quote
      } else {
        return std::make_pair(begin, i + 1);
      }
    }
    return refuse("the quoted value continues on the next line");
  }
  // A plain scalar ends at the line's end, at " #" (a comment), at ": " and,
  // in a flow collection, at a flow indicator.
  for (; i < n && !IsLineEnd(text[i]); ++i) {
    const char c = text[i];
    if (c == '#' && i > begin && IsBlank(text[i - 1])) break;
    if (c == ':') {
      const char next = i + 1 < n ? text[i + 1] : '\n';
      if (IsBlank(next) || IsLineEnd(next) ||
          (scalar.in_flow && IsFlowIndicator(next))) {
        break;
      }
    }
    if (scalar.in_flow && IsFlowIndicator(c)) break;
  }
  size_t end = i;
  while (end > begin && IsBlank(text[end - 1])) --end;
  if (text.compare(begin, end - begin, scalar.value) != 0) {
    return refuse(
        "the value is written over several lines, or in a form that cannot "
        "be rewritten in place");
  }
  return std::make_pair(begin, end);
}

// Compares the original document with the rewritten one: equal except for
// the replaced scalars, which must hold their new values at their old
// positions.
class ResultChecker {
 public:
  explicit ResultChecker(const std::map<Position, std::string>& replaced)
      : replaced_(replaced) {}

  absl::Status Check(const YAML::Node& before, const YAML::Node& after) {
    if (--budget_ < 0) {
      return absl::InvalidArgumentError(
          "the document expands to too many nodes (aliases?) to rewrite");
    }
    const Position position(before.Mark().line, before.Mark().column);
    auto mismatch = [&](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat(LineLabel(position.first),
                       ": the rewritten sweep does not parse as intended (",
                       what, "); replace the value by hand"));
    };
    if (before.IsScalar()) {
      auto replacement = replaced_.find(position);
      if (replacement != replaced_.end()) {
        if (!after.IsScalar() || after.Scalar() != replacement->second) {
          return mismatch("the replaced value reads differently");
        }
        // Its column may shift when an earlier value on the line grew.
        if (after.Mark().line != position.first) {
          return mismatch("the replaced value moved to another line");
        }
        return absl::OkStatus();
      }
    }
    if (before.Type() != after.Type() || before.Tag() != after.Tag()) {
      return mismatch("a node changed its type");
    }
    if (before.IsScalar()) {
      if (before.Scalar() != after.Scalar()) {
        return mismatch("another value changed");
      }
    } else if (before.IsSequence() || before.IsMap()) {
      if (before.size() != after.size()) {
        return mismatch("a collection changed its size");
      }
      auto a = after.begin();
      for (auto b = before.begin(); b != before.end(); ++b, ++a) {
        if (before.IsSequence()) {
          LORA_RETURN_IF_ERROR(Check(*b, *a));
        } else {
          LORA_RETURN_IF_ERROR(Check(b->first, a->first));
          LORA_RETURN_IF_ERROR(Check(b->second, a->second));
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  const std::map<Position, std::string>& replaced_;
  int64_t budget_ = kMaxNodesVisited;
};

}  // namespace

absl::StatusOr<std::vector<LocalInput>> FindLocalInputs(
    const std::string& text, const std::string& source) {
  LORA_ASSIGN_OR_RETURN(YAML::Node root, LoadYamlDocument(text, source));
  return InputFinder(source).Find(root);
}

absl::StatusOr<std::string> ReplaceScalars(
    const std::string& text,
    const std::vector<std::pair<LocalInput, std::string>>& replacements) {
  if (replacements.empty()) return text;
  LORA_ASSIGN_OR_RETURN(YAML::Node root, LoadYamlDocument(text, "sweep"));
  std::map<Position, ScalarAt> scalars;
  int64_t budget = kMaxNodesVisited;
  LORA_RETURN_IF_ERROR(IndexScalars(root, false, &budget, &scalars));

  std::vector<size_t> line_starts = {0};
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') line_starts.push_back(i + 1);
  }
  // yaml-cpp does not count a UTF-8 byte order mark in the first line's
  // columns.
  const size_t bom = text.rfind("\xEF\xBB\xBF", 0) == 0 ? 3 : 0;

  std::map<Position, std::string> replaced;
  std::vector<Edit> edits;
  for (const auto& [input, new_value] : replacements) {
    const Position position(input.line, input.column);
    auto scalar = scalars.find(position);
    if (scalar == scalars.end() || scalar->second.value != input.value) {
      return absl::InvalidArgumentError(
          absl::StrCat(LineLabel(input.line), ": ", input.key, ": no value \"",
                       absl::CEscape(input.value), "\" at column ",
                       input.column + 1, " to replace"));
    }
    auto [previous, added] = replaced.emplace(position, new_value);
    if (!added) {
      if (previous->second != new_value) {
        return absl::InvalidArgumentError(
            absl::StrCat(LineLabel(input.line), ": ", input.key,
                         ": two different replacements for \"",
                         absl::CEscape(input.value), "\""));
      }
      continue;
    }
    const size_t line = static_cast<size_t>(input.line);
    const size_t offset = line < line_starts.size()
                              ? line_starts[line] +
                                    static_cast<size_t>(input.column) +
                                    (line == 0 ? bom : 0)
                              : text.size();
    if (offset >= text.size()) {
      return absl::InvalidArgumentError(absl::StrCat(LineLabel(input.line),
                                                     ": ", input.key,
                                                     ": position is past the "
                                                     "end of the text"));
    }
    LORA_ASSIGN_OR_RETURN(
        auto range, ScalarRange(text, offset, scalar->second, input.line));
    edits.push_back(
        Edit{range.first, range.second, DoubleQuoted(new_value), position});
  }

  std::sort(edits.begin(), edits.end(),
            [](const Edit& a, const Edit& b) { return a.begin < b.begin; });
  std::string result;
  size_t copied = 0;
  for (const Edit& edit : edits) {
    if (edit.begin < copied) {
      return absl::InvalidArgumentError(absl::StrCat(
          LineLabel(edit.position.first), ": replacements overlap"));
    }
    result.append(text, copied, edit.begin - copied);
    result += edit.text;
    copied = edit.end;
  }
  result.append(text, copied, std::string::npos);

  absl::StatusOr<YAML::Node> reparsed = LoadYamlDocument(result, "sweep");
  if (!reparsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the rewritten sweep is not valid YAML (", reparsed.status().message(),
        "); replace the values by "
        "hand"));
  }
  LORA_RETURN_IF_ERROR(ResultChecker(replaced).Check(root, *reparsed));
  return result;
}

}  // namespace lora::sweep
