#include "lora_core/hf_checkpoint.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <map>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "lora_core/safetensors.h"

namespace lora::core {
namespace {

// Checkpoint keys skipped on purpose, as Hugging Face's
// _keys_to_ignore_on_load_unexpected: buffers, and the aliases of weights
// the model ties (only where this model ties them; elsewhere they are
// unexpected, as in Hugging Face's report).
bool IsIgnoredKey(const std::string& key, HeadKind head) {
  static const std::regex* const buffers = new std::regex(
      R"((^|\.)embeddings\.position_ids$)"         // RoBERTa buffer
      R"(|(^|\.)h\.\d+\.attn\.(masked_)?bias$)");  // GPT-2 mask buffers
  if (std::regex_search(key, *buffers)) return true;
  if (head == HeadKind::kGpt2LanguageModel) return key == "lm_head.weight";
  if (head == HeadKind::kRobertaMaskedLm) {
    return key == "lm_head.decoder.weight" || key == "lm_head.decoder.bias";
  }
  return false;
}

std::string TaskClassName(const TaskModel& model) {
  const bool roberta = model.config().architecture == Architecture::kRoberta;
  switch (model.spec().head) {
    case HeadKind::kNone:
      return roberta ? "RobertaModel" : "GPT2Model";
    case HeadKind::kLinearOnPooler:
      return "RobertaModel";  // Our own head; see the PEFT adapter docs.
    case HeadKind::kRobertaClassification:
      return "RobertaForSequenceClassification";
    case HeadKind::kRobertaMaskedLm:
      return "RobertaForMaskedLM";
    case HeadKind::kGpt2LanguageModel:
      return "GPT2LMHeadModel";
  }
  return "";
}

}  // namespace

std::string LoadReport::ToString() const {
  std::string text =
      absl::StrCat("Loaded ", loaded, " tensors from ", source, ".");
  if (!missing_keys.empty()) {
    absl::StrAppend(&text,
                    "\nSome weights were not initialized from the model "
                    "checkpoint and are newly initialized: [",
                    absl::StrJoin(missing_keys, ", "), "]");
    bool pooler = false;
    for (const std::string& key : missing_keys) {
      pooler = pooler || absl::StrContains(key, "pooler.");
    }
    if (pooler) {
      absl::StrAppend(&text,
                      "\nThe checkpoint has no pooler weights (real roberta "
                      "checkpoints have none): the pooler is initialised "
                      "N(0, initializer_range) from the seeded generator, as "
                      "Hugging Face does, and stays frozen.");
    }
  }
  if (!unexpected_keys.empty()) {
    absl::StrAppend(&text,
                    "\nSome weights of the model checkpoint were not used: [",
                    absl::StrJoin(unexpected_keys, ", "), "]");
  }
  return text;
}

absl::StatusOr<LoadReport> LoadStateDict(TaskModel& model,
                                         const NamedTensors& checkpoint,
                                         const std::string& source) {
  LoadReport report;
  report.source = source;
  auto parameters = model.named_parameters();
  const std::string prefix = BackbonePrefix(model.config().architecture);
  std::map<std::string, at::Tensor> assignments;  // model key -> tensor
  // An alias (RoBERTa MLM's lm_head.decoder.bias) fills lm_head.bias only
  // when the checkpoint lacks the canonical key.
  std::map<std::string, at::Tensor> fallbacks;
  for (const auto& [key, tensor] : checkpoint) {
    std::string target;
    if (parameters.contains(key)) {
      target = key;
    } else if (parameters.contains(prefix + key)) {
      target = prefix + key;  // A bare model's checkpoint.
    } else if (key == "lm_head.decoder.bias" &&
               parameters.contains("lm_head.bias")) {
      fallbacks["lm_head.bias"] = tensor;
      report.ignored_keys.push_back(key);
      continue;
    } else if (IsIgnoredKey(key, model.spec().head)) {
      report.ignored_keys.push_back(key);
      continue;
    } else {
      report.unexpected_keys.push_back(key);
      continue;
    }
    if (absl::StrContains(target, "lora_")) {
      // LoRA weights come from adapters (peft_adapter.h), not checkpoints.
      report.unexpected_keys.push_back(key);
      continue;
    }
    const at::Tensor& parameter = parameters[target];
    if (!parameter.sizes().equals(tensor.sizes())) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": size mismatch for ", key, ": the checkpoint has shape ",
          ShapeText(tensor.sizes()), ", the model ",
          model.config().name.empty() ? "" : "(" + model.config().name + ") ",
          "expects ", ShapeText(parameter.sizes())));
    }
    assignments[target] = tensor;
  }
  for (const auto& [target, tensor] : fallbacks) {
    if (assignments.count(target) == 0) {
      if (!parameters[target].sizes().equals(tensor.sizes())) {
        return absl::InvalidArgumentError(absl::StrCat(
            source,
            ": size mismatch for lm_head.decoder.bias: the checkpoint "
            "has shape ",
            ShapeText(tensor.sizes()), ", the model expects ",
            ShapeText(parameters[target].sizes())));
      }
      assignments[target] = tensor;
    }
  }
  torch::NoGradGuard no_grad;
  for (auto& item : parameters) {
    auto it = assignments.find(item.key());
    if (it == assignments.end()) {
      if (!absl::StrContains(item.key(), "lora_")) {
        report.missing_keys.push_back(item.key());
      }
      continue;
    }
    item.value().copy_(it->second.to(item.value().scalar_type()));
    ++report.loaded;
  }
  return report;
}

absl::StatusOr<PretrainedModel> LoadPretrained(const std::string& directory,
                                               const ModelSpec& spec) {
  LORA_ASSIGN_OR_RETURN(ModelConfig config,
                        LoadModelConfigFromDirectory(directory));
  const std::string weights = directory + "/model.safetensors";
  LORA_ASSIGN_OR_RETURN(NamedTensors tensors, LoadSafetensors(weights));
  LORA_ASSIGN_OR_RETURN(std::shared_ptr<TaskModel> model,
                        TaskModel::Create(config, spec));
  LORA_ASSIGN_OR_RETURN(LoadReport report,
                        LoadStateDict(*model, tensors, weights));
  return PretrainedModel{std::move(model), std::move(report)};
}

NamedTensors HuggingFaceStateDict(const TaskModel& model, bool merge_lora) {
  // The weight each adapted layer is saved with: merged, or without the
  // update a merged layer carries.
  std::map<std::string, at::Tensor> adapted_weights;
  {
    torch::NoGradGuard no_grad;
    for (const auto& [path, layer] : model.LoraLayers()) {
      const at::Tensor weight = layer->weight.detach();
      if (merge_lora) {
        adapted_weights[path + ".weight"] =
            layer->merged() ? weight : weight + layer->delta_weight();
      } else if (layer->merged()) {
        adapted_weights[path + ".weight"] = weight - layer->delta_weight();
      }
    }
  }
  const bool strip_prefix = model.spec().head == HeadKind::kNone;
  const std::string prefix = BackbonePrefix(model.config().architecture);
  NamedTensors state;
  for (const auto& item : model.named_parameters()) {
    const std::string& key = item.key();
    if (absl::StrContains(key, "lora_")) continue;
    at::Tensor value = item.value().detach();
    if (auto it = adapted_weights.find(key); it != adapted_weights.end()) {
      value = it->second;
    }
    std::string name = key;
    if (strip_prefix && absl::StartsWith(name, prefix)) {
      name = name.substr(prefix.size());
    }
    state[name] = value;
  }
  return state;
}

absl::Status SavePretrained(const TaskModel& model,
                            const std::string& directory, bool merge_lora) {
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot create ", directory, ": ", error.message()));
  }
  const bool classifier =
      model.spec().head == HeadKind::kRobertaClassification ||
      model.spec().head == HeadKind::kLinearOnPooler;
  LORA_RETURN_IF_ERROR(WriteFileAtomically(
      directory + "/config.json",
      ModelConfigToJson(model.config(), TaskClassName(model),
                        classifier ? model.spec().num_labels : 0)));
  return SaveSafetensors(directory + "/model.safetensors",
                         HuggingFaceStateDict(model, merge_lora));
}

}  // namespace lora::core
