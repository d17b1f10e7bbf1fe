// Output formats of loractl (`--output table|json|yaml`): aligned text
// tables for people, and JSON or YAML of the API's messages for scripts.
// JSON uses the proto field names (snake_case) and prints every field, so a
// script sees the same keys whether or not a value is zero. Pure functions;
// thread-safe.
#ifndef LORA_SWEEP_LORACTL_OUTPUT_H_
#define LORA_SWEEP_LORACTL_OUTPUT_H_

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "google/protobuf/message.h"

namespace lora::loractl {

enum class OutputFormat { kTable, kJson, kYaml };

// "table", "json" or "yaml"; InvalidArgument otherwise.
absl::StatusOr<OutputFormat> ParseOutputFormat(const std::string& name);

// A message as a JSON value (proto field names, enums by name, int64 as
// numbers, every field present).
nlohmann::json ProtoToJson(const google::protobuf::Message& message);

// JSON text, indented by two spaces, with a final newline.
std::string JsonText(const nlohmann::json& value);

// The same value as a YAML document (block style, strings quoted when
// they would otherwise read as another type), with a final newline.
std::string JsonToYaml(const nlohmann::json& value);

// `value` as JSON or YAML text per `format` (kTable is not accepted and
// renders as JSON).
std::string StructuredText(const nlohmann::json& value, OutputFormat format);

// A text table: upper-case headers, columns separated by three spaces,
// each column aligned left ('l') or right ('r') as `align` says (missing
// letters mean left). Trailing blanks are trimmed.
struct TextTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::string align;

  std::string Render() const;
};

// Display width of UTF-8 text (code points; every one counted as one
// column, which holds for the text loractl prints).
size_t DisplayWidth(const std::string& text);

}  // namespace lora::loractl

#endif  // LORA_SWEEP_LORACTL_OUTPUT_H_
