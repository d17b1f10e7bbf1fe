// Conversions between the run store's records and the lora.v1 messages.
// Shared by the gRPC services and their tests.
#ifndef LORA_SWEEP_COORDINATOR_PROTO_CONVERT_H_
#define LORA_SWEEP_COORDINATOR_PROTO_CONVERT_H_

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "coordinator/run_state.h"
#include "coordinator/run_store.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "lora/v1/common.pb.h"
#include "lora/v1/sweep_service.pb.h"

namespace lora::coordinator {

google::protobuf::Timestamp ToTimestamp(int64_t unix_ms);
int64_t FromTimestamp(const google::protobuf::Timestamp& timestamp);

v1::RunState ToProto(RunState state);
// RUN_STATE_UNSPECIFIED and unknown values are InvalidArgument.
absl::StatusOr<RunState> FromProto(v1::RunState state);
v1::SweepState ToProto(SweepState state);

// The sweep with its run counts.
v1::Sweep ToProto(const SweepRecord& sweep);

// The run with its resolved config (parsed from config_yaml), parameters,
// lifecycle and progress. `latest_metrics` may be filled by the caller.
v1::Run ToProto(const RunRecord& run);

// The training config YAML of a run as a RunConfig message.
v1::RunConfig RunConfigFromYaml(const std::string& config_yaml,
                                const RunRecord& run);

v1::SweepEvent ToProto(const EventRecord& event);

v1::MetricPoint ToProto(const MetricPoint& point);
MetricPoint FromProto(const v1::MetricPoint& point);

v1::Artifact ToProto(const ArtifactRecord& artifact, bool with_files);

// A structured SweepSpec (SubmitSweepRequest.spec_struct) as the sweep
// file it stands for, so both forms go through the same validation.
// InvalidArgument for enum values out of range.
absl::StatusOr<std::string> SweepSpecToYaml(const v1::SweepSpec& spec);

}  // namespace lora::coordinator

#endif  // LORA_SWEEP_COORDINATOR_PROTO_CONVERT_H_
