// How loractl shows the API's values to people: state names, swept
// parameters, parameter counts, metric values, durations and ages. Pure
// functions of their arguments; thread-safe.
#ifndef LORA_SWEEP_LORACTL_DISPLAY_H_
#define LORA_SWEEP_LORACTL_DISPLAY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/map.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "lora/v1/common.pb.h"

namespace lora::loractl {

// RUN_STATE_RUNNING -> "RUNNING"; SWEEP_STATE_FAILED -> "FAILED".
std::string RunStateName(v1::RunState state);
std::string SweepStateName(v1::SweepState state);
bool IsTerminal(v1::RunState state);
bool IsTerminal(v1::SweepState state);

// "running", "RUNNING" or "RUN_STATE_RUNNING" -> RUN_STATE_RUNNING.
// InvalidArgument naming the value and the accepted names otherwise.
absl::StatusOr<v1::RunState> ParseRunState(const std::string& name);

// A google.protobuf.Value as a sweep file writes it: 4, 0.0005, query,
// [query, value], true.
std::string FormatValue(const google::protobuf::Value& value);
// The same for a JSON value (numbers written as in FormatValue).
std::string FormatJsonValue(const nlohmann::json& value);
// A protobuf Value as JSON (numbers that are integers become integers).
nlohmann::json ValueToJson(const google::protobuf::Value& value);
// {"seed": 0, "lora.rank": 2} -> "lora.rank=2 seed=0" (keys sorted).
std::string FormatParameters(
    const google::protobuf::Map<std::string, google::protobuf::Value>& params);
std::string FormatJsonParameters(const nlohmann::json& params);

// The shortest text that reads back as the same double: 4, 0.0005,
// 0.93120000000000003 only when needed. For CSV and other exact output.
std::string FormatExact(double number);

// 124645632 -> "124,645,632".
std::string FormatCount(int64_t value);

// A metric value for people: accuracies as percentages with two decimals
// ("93.12%"), everything else with four decimals ("0.2850").
std::string FormatMetric(const std::string& name, double value);
// True for metrics shown as percentages (names containing "accuracy").
bool IsPercentMetric(const std::string& name);

// "val_accuracy" -> "Val Accuracy".
std::string MetricTitle(const std::string& name);

// 3725 s -> "1h02m", 185 s -> "3m05s", 42 s -> "42s", 0.4 s -> "0s".
std::string HumanDuration(absl::Duration duration);

// Age of `time` at `now`, kubectl style: "12s", "5m", "3h", "2d"; "-" when
// the timestamp is unset.
std::string FormatAge(const google::protobuf::Timestamp& time, absl::Time now);

absl::Time ToAbslTime(const google::protobuf::Timestamp& time);

}  // namespace lora::loractl

#endif  // LORA_SWEEP_LORACTL_DISPLAY_H_
