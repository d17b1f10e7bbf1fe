#include "sweep/run_proto.h"

#include <string>

#include "sweep/artifact_manifest.h"

namespace lora::sweep {

google::protobuf::Value JsonToValue(const nlohmann::json& json) {
  google::protobuf::Value value;
  if (json.is_null()) {
    value.set_null_value(google::protobuf::NULL_VALUE);
  } else if (json.is_boolean()) {
    value.set_bool_value(json.get<bool>());
  } else if (json.is_number()) {
    value.set_number_value(json.get<double>());
  } else if (json.is_string()) {
    value.set_string_value(json.get<std::string>());
  } else if (json.is_array()) {
    for (const nlohmann::json& item : json) {
      *value.mutable_list_value()->add_values() = JsonToValue(item);
    }
  } else {
    for (const auto& [key, item] : json.items()) {
      (*value.mutable_struct_value()->mutable_fields())[key] =
          JsonToValue(item);
    }
  }
  return value;
}

v1::AmpMode AmpModeToProto(core::AmpMode mode) {
  switch (mode) {
    case core::AmpMode::kOff:
      return v1::AMP_MODE_OFF;
    case core::AmpMode::kBf16:
      return v1::AMP_MODE_BF16;
    case core::AmpMode::kFp16:
      return v1::AMP_MODE_FP16;
  }
  return v1::AMP_MODE_UNSPECIFIED;
}

v1::RunConfig TrainConfigToRunConfig(const core::TrainConfig& c) {
  v1::RunConfig out;
  out.set_model(c.model);
  if (IsArtifactId(c.model)) out.set_model_artifact_id(c.model);
  out.set_task(core::DataTaskName(c.task));
  if (IsArtifactId(c.data_dir)) out.set_dataset_artifact_id(c.data_dir);
  out.set_head(core::HeadKindName(c.head));
  v1::LoraConfig& lora = *out.mutable_lora();
  lora.set_rank(static_cast<int32_t>(c.lora.rank));
  lora.set_alpha(c.lora.alpha);
  lora.set_dropout(c.lora.dropout);
  for (const std::string& target : c.lora.target_modules) {
    lora.add_target_modules(target);
  }
  lora.set_use_rslora(c.lora.use_rslora);
  out.set_epochs(static_cast<int32_t>(c.epochs));
  out.set_batch_size(static_cast<int32_t>(c.batch_size));
  out.set_grad_accum_steps(static_cast<int32_t>(c.grad_accum_steps));
  out.set_lr(c.lr);
  out.set_weight_decay(c.weight_decay);
  out.set_warmup_ratio(c.warmup_ratio);
  out.set_max_grad_norm(c.max_grad_norm);
  out.set_label_smoothing(c.label_smoothing);
  out.set_max_seq_len(static_cast<int32_t>(c.max_seq_len));
  out.set_amp(AmpModeToProto(c.amp));
  out.set_seed(static_cast<int64_t>(c.seed));
  out.set_early_stopping_patience(
      static_cast<int32_t>(c.early_stopping_patience));
  out.set_full_finetune(c.trainable == core::TrainableSet::kFull);
  out.set_head_only(c.trainable == core::TrainableSet::kHeadOnly);
  out.set_num_labels(static_cast<int32_t>(c.num_labels));
  return out;
}

}  // namespace lora::sweep
