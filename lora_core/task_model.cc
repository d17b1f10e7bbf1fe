#include "lora_core/task_model.h"

#include <map>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace lora::core {

bool IsHeadParameter(const std::string& name) {
  return absl::StartsWith(name, "classifier.") ||
         absl::StartsWith(name, "lm_head.");
}

TaskModel::TaskModel(const ModelConfig& config, const ModelSpec& spec)
    : config_(config), spec_(spec) {
  if (config.architecture == Architecture::kRoberta) {
    const bool pooler =
        spec.head == HeadKind::kNone || spec.head == HeadKind::kLinearOnPooler;
    roberta = register_module("roberta", RobertaModel(config, pooler));
  } else {
    transformer = register_module("transformer", Gpt2Model(config));
  }
  switch (spec.head) {
    case HeadKind::kLinearOnPooler:
      linear_classifier_ = register_module(
          "classifier", LoraLinear(config.hidden_size, spec.num_labels));
      InitTransformerWeights(*linear_classifier_, config.initializer_range);
      break;
    case HeadKind::kRobertaClassification:
      classification_head_ = register_module(
          "classifier", RobertaClassificationHead(config, spec.num_labels));
      break;
    case HeadKind::kRobertaMaskedLm:
      lm_head_ = register_module(
          "lm_head", RobertaLmHead(config, roberta->word_embeddings));
      break;
    case HeadKind::kNone:
    case HeadKind::kGpt2LanguageModel:
      break;
  }
}

absl::StatusOr<std::shared_ptr<TaskModel>> TaskModel::Create(
    const ModelConfig& config, const ModelSpec& spec) {
  // Validates head, labels, targets and bias mode before building anything.
  LORA_RETURN_IF_ERROR(CountParameters(config, spec).status());
  std::shared_ptr<TaskModel> model(new TaskModel(config, spec));
  LORA_RETURN_IF_ERROR(model->AddLora());
  model->SetTrainable(spec.trainable);
  return model;
}

absl::Status TaskModel::AddLora() {
  LORA_ASSIGN_OR_RETURN(std::vector<LoraPlacement> placements,
                        PlaceLora(config_, spec_.head, spec_.lora));
  std::map<std::string, LoraLinear> by_path;
  for (auto& [path, layer] : LinearLayers()) by_path.emplace(path, layer);
  for (const LoraPlacement& placement : placements) {
    auto it = by_path.find(placement.layer.path);
    if (it == by_path.end()) {
      return absl::InternalError(
          absl::StrCat("model_layout places LoRA on ", placement.layer.path,
                       ", which the LibTorch model does not have"));
    }
    it->second->add_lora(LoraLinearOptions(placement.layer.in_features,
                                           placement.layer.out_features)
                             .rank(spec_.lora.rank)
                             .alpha(spec_.lora.alpha)
                             .dropout(spec_.lora.dropout)
                             .use_rslora(spec_.lora.use_rslora)
                             .enabled_segments(placement.enabled_segments));
  }
  return absl::OkStatus();
}

void TaskModel::SetTrainable(TrainableSet set) {
  std::map<std::string, bool> adapted_bias;
  for (const auto& [path, layer] : LoraLayers()) {
    adapted_bias[path + ".bias"] = true;
  }
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    bool trainable = false;
    switch (set) {
      case TrainableSet::kFull:
        trainable = true;
        break;
      case TrainableSet::kHeadOnly:
        trainable = IsHeadParameter(name);
        break;
      case TrainableSet::kLora:
        trainable = IsHeadParameter(name) || absl::StrContains(name, "lora_") ||
                    (spec_.bias == "all" && absl::EndsWith(name, "bias")) ||
                    (spec_.bias == "lora_only" && adapted_bias.count(name));
        break;
    }
    item.value().set_requires_grad(trainable);
  }
  spec_.trainable = set;
}

TaskModelOutput TaskModel::forward(const at::Tensor& input_ids,
                                   const at::Tensor& attention_mask,
                                   const at::Tensor& logit_positions) {
  TaskModelOutput out;
  if (roberta) {
    out.hidden = roberta->forward(input_ids, attention_mask);
    if (roberta->has_pooler()) out.pooled = roberta->pool(out.hidden);
  } else {
    out.hidden = transformer->forward(input_ids, attention_mask);
  }
  switch (spec_.head) {
    case HeadKind::kLinearOnPooler:
      out.logits = linear_classifier_->forward(out.pooled);
      break;
    case HeadKind::kRobertaClassification:
      out.logits = classification_head_->forward(out.hidden);
      break;
    case HeadKind::kRobertaMaskedLm:
      out.logits = lm_head_->forward(logit_positions.defined()
                                         ? out.hidden.index({logit_positions})
                                         : out.hidden);
      break;
    case HeadKind::kGpt2LanguageModel:
      out.logits = transformer->lm_logits(out.hidden);
      break;
    case HeadKind::kNone:
      break;
  }
  return out;
}

ParameterCounts TaskModel::CountModuleParameters() const {
  ParameterCounts counts;
  for (const auto& item : named_parameters()) {
    const int64_t n = item.value().numel();
    if (absl::StrContains(item.key(), "lora_")) {
      counts.lora += n;
    } else if (IsHeadParameter(item.key())) {
      counts.head += n;
    } else {
      counts.base += n;
    }
    if (item.value().requires_grad()) counts.trainable += n;
  }
  counts.total = counts.base + counts.lora + counts.head;
  return counts;
}

std::vector<std::pair<std::string, LoraLinear>> TaskModel::LinearLayers()
    const {
  std::vector<std::pair<std::string, LoraLinear>> layers;
  for (const auto& item : named_modules("", /*include_self=*/false)) {
    if (auto linear = std::dynamic_pointer_cast<LoraLinearImpl>(item.value())) {
      layers.emplace_back(item.key(), LoraLinear(linear));
    }
  }
  return layers;
}

std::vector<std::pair<std::string, LoraLinear>> TaskModel::LoraLayers() const {
  std::vector<std::pair<std::string, LoraLinear>> adapted;
  for (auto& [path, layer] : LinearLayers()) {
    if (layer->has_lora()) adapted.emplace_back(path, layer);
  }
  return adapted;
}

void TaskModel::MergeLora() {
  for (auto& [path, layer] : LoraLayers()) layer->merge();
}

void TaskModel::UnmergeLora() {
  for (auto& [path, layer] : LoraLayers()) layer->unmerge();
}

std::vector<std::pair<std::string, at::Tensor>> TaskModel::TrainableParameters()
    const {
  std::vector<std::pair<std::string, at::Tensor>> trainable;
  for (const auto& item : named_parameters()) {
    if (item.value().requires_grad()) {
      trainable.emplace_back(item.key(), item.value());
    }
  }
  return trainable;
}

}  // namespace lora::core
