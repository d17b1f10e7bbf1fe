#include "loractl/display.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace lora::loractl {
namespace {

std::string WithoutPrefix(const std::string& name, const std::string& prefix) {
  return absl::StartsWith(name, prefix) ? name.substr(prefix.size()) : name;
}

}  // namespace

std::string FormatExact(double number) {
  if (std::isfinite(number) && number == std::floor(number) &&
      std::fabs(number) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(number));
  }
  for (int precision = 6; precision <= 17; ++precision) {
    std::string text = absl::StrFormat("%.*g", precision, number);
    if (std::strtod(text.c_str(), nullptr) == number) return text;
  }
  return absl::StrFormat("%.17g", number);
}

std::string RunStateName(v1::RunState state) {
  return WithoutPrefix(v1::RunState_Name(state), "RUN_STATE_");
}

std::string SweepStateName(v1::SweepState state) {
  return WithoutPrefix(v1::SweepState_Name(state), "SWEEP_STATE_");
}

bool IsTerminal(v1::RunState state) {
  return state == v1::RUN_STATE_SUCCEEDED || state == v1::RUN_STATE_FAILED ||
         state == v1::RUN_STATE_CANCELLED;
}

bool IsTerminal(v1::SweepState state) {
  return state == v1::SWEEP_STATE_SUCCEEDED ||
         state == v1::SWEEP_STATE_FAILED || state == v1::SWEEP_STATE_CANCELLED;
}

absl::StatusOr<v1::RunState> ParseRunState(const std::string& name) {
  std::string upper = absl::AsciiStrToUpper(name);
  if (!absl::StartsWith(upper, "RUN_STATE_")) upper = "RUN_STATE_" + upper;
  v1::RunState state;
  if (v1::RunState_Parse(upper, &state) && state != v1::RUN_STATE_UNSPECIFIED) {
    return state;
  }
  std::vector<std::string> names;
  for (int i = v1::RunState_MIN + 1; i <= v1::RunState_MAX; ++i) {
    if (v1::RunState_IsValid(i)) {
      names.push_back(
          absl::AsciiStrToLower(RunStateName(static_cast<v1::RunState>(i))));
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown run state \"", name,
                                                 "\"; expected one of ",
                                                 absl::StrJoin(names, ", ")));
}

nlohmann::json ValueToJson(const google::protobuf::Value& value) {
  switch (value.kind_case()) {
    case google::protobuf::Value::kNumberValue: {
      const double number = value.number_value();
      if (std::isfinite(number) && number == std::floor(number) &&
          std::fabs(number) < 9e15) {
        return static_cast<int64_t>(number);
      }
      return number;
    }
    case google::protobuf::Value::kStringValue:
      return value.string_value();
    case google::protobuf::Value::kBoolValue:
      return value.bool_value();
    case google::protobuf::Value::kListValue: {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& item : value.list_value().values()) {
        list.push_back(ValueToJson(item));
      }
      return list;
    }
    case google::protobuf::Value::kStructValue: {
      nlohmann::json object = nlohmann::json::object();
      for (const auto& [key, item] : value.struct_value().fields()) {
        object[key] = ValueToJson(item);
      }
      return object;
    }
    default:
      return nullptr;
  }
}

std::string FormatJsonValue(const nlohmann::json& value) {
  if (value.is_number()) return FormatExact(value.get<double>());
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  if (value.is_array()) {
    std::vector<std::string> items;
    for (const nlohmann::json& item : value) {
      items.push_back(FormatJsonValue(item));
    }
    return absl::StrCat("[", absl::StrJoin(items, ", "), "]");
  }
  if (value.is_object()) {
    std::vector<std::string> items;
    for (const auto& [key, item] : value.items()) {
      items.push_back(absl::StrCat(key, ": ", FormatJsonValue(item)));
    }
    return absl::StrCat("{", absl::StrJoin(items, ", "), "}");
  }
  return "null";
}

std::string FormatValue(const google::protobuf::Value& value) {
  return FormatJsonValue(ValueToJson(value));
}

std::string FormatParameters(
    const google::protobuf::Map<std::string, google::protobuf::Value>& params) {
  std::map<std::string, std::string> sorted;
  for (const auto& [key, value] : params) sorted[key] = FormatValue(value);
  std::vector<std::string> parts;
  for (const auto& [key, value] : sorted) {
    parts.push_back(absl::StrCat(key, "=", value));
  }
  return absl::StrJoin(parts, " ");
}

std::string FormatJsonParameters(const nlohmann::json& params) {
  if (!params.is_object()) return "";
  std::map<std::string, std::string> sorted;
  for (const auto& [key, value] : params.items()) {
    sorted[key] = FormatJsonValue(value);
  }
  std::vector<std::string> parts;
  for (const auto& [key, value] : sorted) {
    parts.push_back(absl::StrCat(key, "=", value));
  }
  return absl::StrJoin(parts, " ");
}

std::string FormatCount(int64_t value) {
  const bool negative = value < 0;
  std::string digits = absl::StrCat(negative ? -value : value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return negative ? "-" + out : out;
}

bool IsPercentMetric(const std::string& name) {
  return absl::StrContains(name, "accuracy");
}

std::string FormatMetric(const std::string& name, double value) {
  if (!std::isfinite(value)) return absl::StrCat(value);
  if (IsPercentMetric(name)) return absl::StrFormat("%.2f%%", 100.0 * value);
  return absl::StrFormat("%.4f", value);
}

std::string MetricTitle(const std::string& name) {
  std::string title;
  bool start = true;
  for (char c : name) {
    if (c == '_' || c == '.') {
      title.push_back(' ');
      start = true;
    } else {
      title.push_back(start ? absl::ascii_toupper(c) : c);
      start = false;
    }
  }
  return title;
}

std::string HumanDuration(absl::Duration duration) {
  if (duration < absl::ZeroDuration()) duration = absl::ZeroDuration();
  const int64_t seconds = absl::ToInt64Seconds(duration);
  if (seconds >= 86400) {
    return absl::StrFormat("%dd%02dh", seconds / 86400, seconds % 86400 / 3600);
  }
  if (seconds >= 3600) {
    return absl::StrFormat("%dh%02dm", seconds / 3600, seconds % 3600 / 60);
  }
  if (seconds >= 60) {
    return absl::StrFormat("%dm%02ds", seconds / 60, seconds % 60);
  }
  return absl::StrFormat("%ds", seconds);
}

absl::Time ToAbslTime(const google::protobuf::Timestamp& time) {
  return absl::FromUnixSeconds(time.seconds()) +
         absl::Nanoseconds(time.nanos());
}

std::string FormatAge(const google::protobuf::Timestamp& time, absl::Time now) {
  if (time.seconds() == 0 && time.nanos() == 0) return "-";
  const int64_t seconds =
      std::max<int64_t>(0, absl::ToInt64Seconds(now - ToAbslTime(time)));
  if (seconds < 120) return absl::StrCat(seconds, "s");
  if (seconds < 2 * 3600) return absl::StrCat(seconds / 60, "m");
  if (seconds < 2 * 86400) return absl::StrCat(seconds / 3600, "h");
  return absl::StrCat(seconds / 86400, "d");
}

}  // namespace lora::loractl
