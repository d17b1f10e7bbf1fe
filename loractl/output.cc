#include "loractl/output.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"

namespace lora::loractl {
namespace {

// int64 fields come out of protobuf's JSON printer as strings (JSON numbers
// lose precision beyond 2^53); loractl's counts and sequences stay far
// below that, so scripts get numbers. Only strings the descriptor says are
// 64-bit integers are converted.
void Int64StringsToNumbers(const google::protobuf::Descriptor* descriptor,
                           nlohmann::json* value);

void ConvertField(const google::protobuf::FieldDescriptor* field,
                  nlohmann::json* value) {
  using google::protobuf::FieldDescriptor;
  auto convert_one = [field](nlohmann::json* item) {
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      Int64StringsToNumbers(field->message_type(), item);
      return;
    }
    const bool is_int64 = field->cpp_type() == FieldDescriptor::CPPTYPE_INT64 ||
                          field->cpp_type() == FieldDescriptor::CPPTYPE_UINT64;
    if (is_int64 && item->is_string()) {
      const std::string text = item->get<std::string>();
      try {
        size_t used = 0;
        const long long number = std::stoll(text, &used);
        if (used == text.size()) *item = static_cast<int64_t>(number);
      } catch (...) {
        // Leave it a string.
      }
    }
  };
  if (field->is_map()) {
    const google::protobuf::FieldDescriptor* map_value =
        field->message_type()->map_value();
    if (value->is_object()) {
      for (auto& [key, item] : value->items()) {
        (void)key;
        ConvertField(map_value, &item);
      }
    }
    return;
  }
  if (field->is_repeated()) {
    if (value->is_array()) {
      for (nlohmann::json& item : *value) convert_one(&item);
    }
    return;
  }
  convert_one(value);
}

void Int64StringsToNumbers(const google::protobuf::Descriptor* descriptor,
                           nlohmann::json* value) {
  if (!value->is_object()) return;
  // Well-known types (Timestamp, Value, Struct) print as their own JSON.
  if (descriptor->file()->package() == "google.protobuf") return;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = descriptor->field(i);
    auto it = value->find(field->name());
    if (it != value->end()) ConvertField(field, &*it);
  }
}

// The shortest %g text that reads back as the same double (0.0005, not
// 0.00050000000000000001).
std::string ShortestDouble(double number) {
  if (std::isnan(number)) return ".nan";
  if (std::isinf(number)) return number > 0 ? ".inf" : "-.inf";
  for (int precision = 6; precision < 17; ++precision) {
    std::string text = absl::StrFormat("%.*g", precision, number);
    if (std::strtod(text.c_str(), nullptr) == number) return text;
  }
  return absl::StrFormat("%.17g", number);
}

bool NeedsQuotes(const std::string& text) {
  if (text.empty()) return true;
  // Scalars YAML would read as something other than this string.
  const std::string lower = absl::AsciiStrToLower(text);
  static const char* const kSpecial[] = {"true", "false", "yes",  "no",
                                         "on",   "off",   "null", "~"};
  for (const char* special : kSpecial) {
    if (lower == special) return true;
  }
  char* end = nullptr;
  std::strtod(text.c_str(), &end);
  if (end != nullptr && *end == '\0') return true;
  return false;
}

void Emit(YAML::Emitter& out, const nlohmann::json& value) {
  if (value.is_object()) {
    if (value.empty()) {
      out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
      return;
    }
    out << YAML::BeginMap;
    for (const auto& [key, item] : value.items()) {
      out << YAML::Key << key << YAML::Value;
      Emit(out, item);
    }
    out << YAML::EndMap;
  } else if (value.is_array()) {
    if (value.empty()) {
      out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
      return;
    }
    out << YAML::BeginSeq;
    for (const nlohmann::json& item : value) Emit(out, item);
    out << YAML::EndSeq;
  } else if (value.is_string()) {
    const std::string text = value.get<std::string>();
    if (NeedsQuotes(text)) {
      out << YAML::DoubleQuoted << text;
    } else {
      out << text;
    }
  } else if (value.is_null()) {
    out << YAML::Null;
  } else if (value.is_boolean()) {
    out << value.get<bool>();
  } else if (value.is_number_integer()) {
    out << value.get<int64_t>();
  } else {
    out << ShortestDouble(value.get<double>());
  }
}

}  // namespace

absl::StatusOr<OutputFormat> ParseOutputFormat(const std::string& name) {
  if (name == "table") return OutputFormat::kTable;
  if (name == "json") return OutputFormat::kJson;
  if (name == "yaml") return OutputFormat::kYaml;
  return absl::InvalidArgumentError(absl::StrCat(
      "--output: expected one of table, json, yaml; got \"", name, "\""));
}

nlohmann::json ProtoToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string text;
  const auto status =
      google::protobuf::util::MessageToJsonString(message, &text, options);
  if (!status.ok()) {
    return nlohmann::json{{"error", std::string(status.message())}};
  }
  nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
  Int64StringsToNumbers(message.GetDescriptor(), &value);
  return value;
}

std::string JsonText(const nlohmann::json& value) {
  return value.dump(2) + "\n";
}

std::string JsonToYaml(const nlohmann::json& value) {
  YAML::Emitter out;
  out.SetIndent(2);
  Emit(out, value);
  std::string text = out.c_str();
  if (text.empty() || text.back() != '\n') text.push_back('\n');
  return text;
}

std::string StructuredText(const nlohmann::json& value, OutputFormat format) {
  return format == OutputFormat::kYaml ? JsonToYaml(value) : JsonText(value);
}

size_t DisplayWidth(const std::string& text) {
  size_t width = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) != 0x80) ++width;
  }
  return width;
}

std::string TextTable::Render() const {
  const size_t columns = header.size();
  std::vector<size_t> widths(columns, 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < columns && i < row.size(); ++i) {
      widths[i] = std::max(widths[i], DisplayWidth(row[i]));
    }
  };
  std::vector<std::string> upper;
  for (const std::string& name : header) {
    upper.push_back(absl::AsciiStrToUpper(name));
  }
  measure(upper);
  for (const auto& row : rows) measure(row);
  std::string out;
  auto render = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < columns; ++i) {
      const std::string cell = i < row.size() ? row[i] : "";
      const std::string pad(widths[i] - DisplayWidth(cell), ' ');
      const bool right = i < align.size() && align[i] == 'r';
      if (i > 0) line += "   ";
      line += right ? pad + cell : cell + pad;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  };
  render(upper);
  for (const auto& row : rows) render(row);
  return out;
}

}  // namespace lora::loractl
