// A resolved run as the lora.v1 API shows it, shared by the coordinator
// (what it stores and serves) and loractl (what a dry run prints): the
// training config as a RunConfig message and sweep parameters as protobuf
// Values. No LibTorch.
#ifndef LORA_SWEEP_SWEEP_RUN_PROTO_H_
#define LORA_SWEEP_SWEEP_RUN_PROTO_H_

#include <nlohmann/json.hpp>

#include "google/protobuf/struct.pb.h"
#include "lora/v1/common.pb.h"
#include "lora_core/train_config.h"

namespace lora::sweep {

// A JSON value (a run's parameter value) as a protobuf Value.
google::protobuf::Value JsonToValue(const nlohmann::json& json);

v1::AmpMode AmpModeToProto(core::AmpMode mode);

// The training config as a RunConfig message: every field RunConfig has;
// an artifact id in `model` or `data_dir` also fills model_artifact_id /
// dataset_artifact_id. Resources are the caller's (they are not part of
// the training config).
v1::RunConfig TrainConfigToRunConfig(const core::TrainConfig& config);

}  // namespace lora::sweep

#endif  // LORA_SWEEP_SWEEP_RUN_PROTO_H_
