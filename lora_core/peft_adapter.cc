#include "lora_core/peft_adapter.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/json_util.h"
#include "base/status_macros.h"
#include "lora_core/safetensors.h"

namespace lora::core {
namespace {

using Json = nlohmann::json;

constexpr char kLoraA[] = ".lora_A.weight";
constexpr char kLoraB[] = ".lora_B.weight";

// Whether the adapter's task type loads onto the bare backbone class
// (PEFT's FEATURE_EXTRACTION loads onto AutoModel, whose module paths have
// no "roberta." / "transformer." prefix).
bool ExportsBareBackbone(HeadKind head) {
  return head != HeadKind::kRobertaClassification &&
         head != HeadKind::kGpt2LanguageModel;
}

// Module paths in adapter keys are those of the Hugging Face class the task
// type loads onto.
std::string ToPeftPath(const TaskModel& model, const std::string& path) {
  const std::string prefix = BackbonePrefix(model.config().architecture);
  if (ExportsBareBackbone(model.spec().head) &&
      absl::StartsWith(path, prefix)) {
    return path.substr(prefix.size());
  }
  return path;
}

// PEFT's pattern rule: a key applies to a module whose name equals it or
// ends with "." + key.
bool PatternMatches(const std::string& path, const std::string& key) {
  return path == key || absl::EndsWith(path, "." + key);
}

std::string TaskType(HeadKind head) {
  switch (head) {
    case HeadKind::kRobertaClassification:
      return "SEQ_CLS";
    case HeadKind::kGpt2LanguageModel:
      return "CAUSAL_LM";
    default:
      return "FEATURE_EXTRACTION";
  }
}

// One adapted layer in PEFT's whole-layer form.
struct PeftLayer {
  std::string path;
  at::Tensor a;  // [rank, in]
  at::Tensor b;  // [out, rank]
  int64_t rank;
  double alpha;
};

PeftLayer ToPeftLayer(const std::string& path, const LoraLinearImpl& layer) {
  const LoraLinearOptions& options = layer.options;
  const std::vector<bool>& enabled = options.enabled_segments();
  PeftLayer out{path, layer.lora_A.detach().clone(),
                layer.lora_B.detach().clone(), options.rank(), options.alpha()};
  if (enabled.empty()) return out;
  // Segments become one whole-layer adapter of rank r * enabled: A stacks
  // the blocks (as lora_A already does) and B places each block's rows in
  // its segment and its columns beside the others', zeros elsewhere.
  const int64_t r = options.rank();
  const int64_t block_out = options.out_features() / options.segments();
  int64_t blocks = 0;
  for (bool on : enabled) blocks += on ? 1 : 0;
  out.rank = r * blocks;
  out.b = at::zeros({options.out_features(), out.rank}, out.b.options());
  int64_t block = 0;
  for (int64_t segment = 0; segment < options.segments(); ++segment) {
    if (!enabled[segment]) continue;
    out.b.narrow(0, segment * block_out, block_out)
        .narrow(1, block * r, r)
        .copy_(layer.lora_B.detach().narrow(0, block * block_out, block_out));
    ++block;
  }
  // Same scaling: alpha' / r' = alpha / r (or alpha' / sqrt(r') with
  // rsLoRA).
  out.alpha = options.use_rslora()
                  ? layer.scaling() * std::sqrt(static_cast<double>(out.rank))
                  : layer.scaling() * static_cast<double>(out.rank);
  return out;
}

}  // namespace

std::string PeftAdapterConfigToJson(const PeftAdapterConfig& config) {
  Json json;
  json["peft_type"] = "LORA";
  json["task_type"] = config.task_type;
  json["r"] = config.r;
  json["lora_alpha"] = config.lora_alpha;
  json["lora_dropout"] = config.lora_dropout;
  json["target_modules"] = config.target_modules;
  json["bias"] = config.bias;
  json["fan_in_fan_out"] = config.fan_in_fan_out;
  json["use_rslora"] = config.use_rslora;
  json["modules_to_save"] = config.modules_to_save.empty()
                                ? Json(nullptr)
                                : Json(config.modules_to_save);
  json["base_model_name_or_path"] = config.base_model_name_or_path;
  json["rank_pattern"] = config.rank_pattern;
  json["alpha_pattern"] = config.alpha_pattern;
  json["inference_mode"] = true;
  json["init_lora_weights"] = true;
  json["layers_to_transform"] = nullptr;
  json["layers_pattern"] = nullptr;
  json["revision"] = nullptr;
  return json.dump(2) + "\n";
}

absl::StatusOr<PeftAdapterConfig> ParsePeftAdapterConfig(
    const std::string& json_text, const std::string& source) {
  auto error = [&source](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", parts...));
  };
  if (JsonNestingDepth(json_text) > 8) return error("JSON nests too deeply");
  Json json = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return error("not a JSON object");
  }
  PeftAdapterConfig config;
  try {
    const std::string peft_type = json.value("peft_type", "");
    if (peft_type != "LORA") {
      return error("peft_type: expected \"LORA\", got \"", peft_type, "\"");
    }
    config.task_type = json.value("task_type", Json("")).is_null()
                           ? ""
                           : json.value("task_type", "");
    if (!json.contains("r") || !json["r"].is_number_integer() ||
        json["r"].get<int64_t>() < 1) {
      return error("r: expected an integer >= 1, got ",
                   json.contains("r") ? JsonExcerpt(json["r"]) : "nothing");
    }
    config.r = json["r"].get<int64_t>();
    if (!json.contains("lora_alpha") || !json["lora_alpha"].is_number()) {
      return error("lora_alpha: expected a number, got ",
                   json.contains("lora_alpha") ? JsonExcerpt(json["lora_alpha"])
                                               : "nothing");
    }
    config.lora_alpha = json["lora_alpha"].get<double>();
    config.lora_dropout = json.value("lora_dropout", 0.0);
    if (!(config.lora_dropout >= 0.0 && config.lora_dropout < 1.0)) {
      return error("lora_dropout: expected a probability in [0, 1), got ",
                   config.lora_dropout);
    }
    if (!std::isfinite(config.lora_alpha)) {
      return error("lora_alpha: expected a finite number");
    }
    const Json& targets = json.value("target_modules", Json::array());
    if (targets.is_string()) {
      config.target_modules = {targets.get<std::string>()};
    } else if (targets.is_array()) {
      config.target_modules = targets.get<std::vector<std::string>>();
    } else {
      return error("target_modules: expected a list of names, got ",
                   JsonExcerpt(targets));
    }
    config.bias = json.value("bias", "none");
    config.fan_in_fan_out = json.value("fan_in_fan_out", false);
    config.use_rslora = json.value("use_rslora", false);
    const Json& save = json.value("modules_to_save", Json(nullptr));
    if (!save.is_null()) {
      config.modules_to_save = save.get<std::vector<std::string>>();
    }
    config.base_model_name_or_path =
        json.value("base_model_name_or_path", Json("")).is_null()
            ? ""
            : json.value("base_model_name_or_path", "");
    if (json.contains("rank_pattern") && json["rank_pattern"].is_object()) {
      config.rank_pattern =
          json["rank_pattern"].get<std::map<std::string, int64_t>>();
    }
    if (json.contains("alpha_pattern") && json["alpha_pattern"].is_object()) {
      config.alpha_pattern =
          json["alpha_pattern"].get<std::map<std::string, double>>();
    }
  } catch (const Json::exception& e) {
    return error("a field has the wrong type: ", e.what());
  }
  return config;
}

absl::StatusOr<PeftAdapter> MakePeftAdapter(const TaskModel& model) {
  const auto layers = model.LoraLayers();
  if (layers.empty()) {
    return absl::FailedPreconditionError(
        "the model has no LoRA layers to export");
  }
  PeftAdapter adapter;
  PeftAdapterConfig& config = adapter.config;
  const ModelSpec& spec = model.spec();
  config.task_type = TaskType(spec.head);
  config.lora_dropout = spec.lora.dropout;
  config.bias = spec.bias;
  config.use_rslora = spec.lora.use_rslora;
  config.fan_in_fan_out = model.config().architecture == Architecture::kGpt2;
  config.base_model_name_or_path = model.config().name;

  std::vector<PeftLayer> peft_layers;
  bool any_segmented = false;
  for (const auto& [path, layer] : layers) {
    any_segmented = any_segmented || !layer->options.enabled_segments().empty();
    peft_layers.push_back(ToPeftLayer(ToPeftPath(model, path), *layer));
  }
  // The most common (rank, alpha) is the default; others become patterns.
  std::map<std::pair<int64_t, double>, int> frequency;
  for (const PeftLayer& layer : peft_layers) {
    ++frequency[{layer.rank, layer.alpha}];
  }
  auto most_common = std::max_element(
      frequency.begin(), frequency.end(),
      [](const auto& a, const auto& b) { return a.second < b.second; });
  config.r = most_common->first.first;
  config.lora_alpha = most_common->first.second;
  for (const PeftLayer& layer : peft_layers) {
    if (layer.rank != config.r) config.rank_pattern[layer.path] = layer.rank;
    if (layer.alpha != config.lora_alpha) {
      config.alpha_pattern[layer.path] = layer.alpha;
    }
    adapter.tensors[kPeftKeyPrefix + layer.path + kLoraA] = layer.a;
    adapter.tensors[kPeftKeyPrefix + layer.path + kLoraB] = layer.b;
  }
  std::set<std::string> targets;
  for (const std::string& target : spec.lora.target_modules) {
    const bool fused_part =
        any_segmented &&
        (target == "query" || target == "key" || target == "value");
    targets.insert(fused_part ? "c_attn" : target);
  }
  config.target_modules.assign(targets.begin(), targets.end());

  for (const auto& item : model.named_parameters()) {
    const std::string& key = item.key();
    const at::Tensor value = item.value().detach().clone();
    if (IsHeadParameter(key)) {
      if (spec.head == HeadKind::kRobertaClassification) {
        adapter.tensors[kPeftKeyPrefix + key] = value;
      } else {
        adapter.own_head[key] = value;
      }
    } else if (absl::StrContains(key, ".pooler.") &&
               !absl::StrContains(key, "lora_") &&
               spec.head == HeadKind::kLinearOnPooler) {
      adapter.own_head[key] = value;  // Random in real checkpoints: keep it.
    } else if (spec.bias != "none" && absl::EndsWith(key, "bias") &&
               item.value().requires_grad()) {
      adapter.tensors[kPeftKeyPrefix + ToPeftPath(model, key)] = value;
    }
  }
  if (spec.head == HeadKind::kRobertaClassification) {
    config.modules_to_save = {"classifier"};
  }
  return adapter;
}

absl::Status ExportPeftAdapter(const TaskModel& model,
                               const std::string& directory) {
  LORA_ASSIGN_OR_RETURN(PeftAdapter adapter, MakePeftAdapter(model));
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot create ", directory, ": ", error.message()));
  }
  LORA_RETURN_IF_ERROR(
      WriteFileAtomically(directory + "/adapter_config.json",
                          PeftAdapterConfigToJson(adapter.config)));
  LORA_RETURN_IF_ERROR(SaveSafetensors(directory + "/adapter_model.safetensors",
                                       adapter.tensors));
  if (!adapter.own_head.empty()) {
    LORA_RETURN_IF_ERROR(SaveSafetensors(
        directory + "/" + kOwnHeadFile, adapter.own_head,
        {{"lora_sweep_head", HeadKindName(model.spec().head)}}));
  }
  return absl::OkStatus();
}

absl::StatusOr<PeftAdapter> ReadPeftAdapter(const std::string& directory) {
  PeftAdapter adapter;
  const std::string config_path = directory + "/adapter_config.json";
  LORA_ASSIGN_OR_RETURN(std::string config_text, ReadFile(config_path));
  LORA_ASSIGN_OR_RETURN(adapter.config,
                        ParsePeftAdapterConfig(config_text, config_path));
  LORA_ASSIGN_OR_RETURN(
      adapter.tensors,
      LoadSafetensors(directory + "/adapter_model.safetensors"));
  const std::string head_path = directory + "/" + kOwnHeadFile;
  if (std::filesystem::exists(head_path)) {
    LORA_ASSIGN_OR_RETURN(adapter.own_head, LoadSafetensors(head_path));
  }
  return adapter;
}

absl::Status ApplyPeftAdapter(const PeftAdapter& adapter, TaskModel& model) {
  const std::string source =
      adapter.config.base_model_name_or_path.empty()
          ? "adapter"
          : "adapter for " + adapter.config.base_model_name_or_path;
  auto error = [&source](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", parts...));
  };
  if (!model.LoraLayers().empty()) {
    return absl::FailedPreconditionError(
        "the model already has LoRA layers; build it without LoRA to apply "
        "an adapter");
  }
  std::map<std::string, LoraLinear> layers;
  const std::string backbone = BackbonePrefix(model.config().architecture);
  for (auto& [path, layer] : model.LinearLayers()) {
    // Keys may name modules with or without the backbone prefix (the bare
    // class's paths or the task class's): accept both.
    layers.emplace(path, layer);
    if (absl::StartsWith(path, backbone)) {
      layers.emplace(path.substr(backbone.size()), layer);
    }
  }
  auto parameters = model.named_parameters();
  const std::string prefix = BackbonePrefix(model.config().architecture);

  struct Plan {
    LoraLinear layer;
    at::Tensor a, b;
    double alpha;
  };
  std::vector<Plan> plans;
  std::map<std::string, at::Tensor> copies;  // model parameter -> value
  std::set<std::string> adapted_paths;
  for (const auto& [key, tensor] : adapter.tensors) {
    if (!absl::StartsWith(key, kPeftKeyPrefix)) {
      return error("key \"", key, "\" does not start with \"", kPeftKeyPrefix,
                   "\"");
    }
    const std::string name = key.substr(std::strlen(kPeftKeyPrefix));
    if (absl::EndsWith(name, kLoraB)) {
      const std::string path =
          name.substr(0, name.size() - std::strlen(kLoraB));
      if (!adapter.tensors.count(kPeftKeyPrefix + path + kLoraA)) {
        return error("\"", key, "\" has no matching lora_A");
      }
      continue;
    }
    if (absl::EndsWith(name, kLoraA)) {
      const std::string path =
          name.substr(0, name.size() - std::strlen(kLoraA));
      auto layer = layers.find(path);
      if (layer == layers.end()) {
        return error("\"", key, "\": the model has no linear layer \"", path,
                     "\"");
      }
      auto b = adapter.tensors.find(kPeftKeyPrefix + path + kLoraB);
      if (b == adapter.tensors.end()) {
        return error("\"", key, "\" has no matching lora_B");
      }
      const LoraLinearOptions& options = layer->second->options;
      const at::Tensor& a = tensor;
      if (a.dim() != 2 || a.size(1) != options.in_features() ||
          b->second.dim() != 2 || b->second.size(0) != options.out_features() ||
          b->second.size(1) != a.size(0)) {
        return error("\"", path, "\": lora_A ", ShapeText(a.sizes()),
                     " and lora_B ", ShapeText(b->second.sizes()),
                     " do not fit a layer of ", options.in_features(), " -> ",
                     options.out_features());
      }
      if (a.size(0) < 1) {
        return error("\"", path, "\": LoRA rank must be >= 1, got ", a.size(0));
      }
      double alpha = adapter.config.lora_alpha;
      for (const auto& [pattern, value] : adapter.config.alpha_pattern) {
        if (PatternMatches(path, pattern)) alpha = value;
      }
      if (!std::isfinite(alpha)) {
        return error("\"", path, "\": lora_alpha is not finite");
      }
      plans.push_back(Plan{layer->second, a, b->second, alpha});
      adapted_paths.insert(path);
      continue;
    }
    // Head (modules_to_save) or bias tensors: plain parameters.
    std::string target = name;
    if (!parameters.contains(target) && parameters.contains(prefix + name)) {
      target = prefix + name;
    }
    if (!parameters.contains(target)) {
      return error("\"", key, "\": the model has no parameter \"", name, "\"");
    }
    if (!parameters[target].sizes().equals(tensor.sizes())) {
      return error("\"", key, "\" has shape ", ShapeText(tensor.sizes()),
                   ", the model expects ",
                   ShapeText(parameters[target].sizes()));
    }
    copies[target] = tensor;
  }
  for (const auto& [key, tensor] : adapter.own_head) {
    if (!parameters.contains(key) ||
        !parameters[key].sizes().equals(tensor.sizes())) {
      return error(kOwnHeadFile, ": \"", key,
                   "\" has no parameter of that shape in the model");
    }
    copies[key] = tensor;
  }
  if (plans.empty()) return error("no lora_A / lora_B tensors");

  for (Plan& plan : plans) {
    const LoraLinearOptions& options = plan.layer->options;
    plan.layer->add_lora(
        LoraLinearOptions(options.in_features(), options.out_features())
            .rank(plan.a.size(0))
            .alpha(plan.alpha)
            .dropout(adapter.config.lora_dropout)
            .use_rslora(adapter.config.use_rslora));
    torch::NoGradGuard no_grad;
    plan.layer->lora_A.copy_(plan.a);
    plan.layer->lora_B.copy_(plan.b);
  }
  {
    torch::NoGradGuard no_grad;
    for (const auto& [target, tensor] : copies) {
      parameters[target].copy_(tensor.to(parameters[target].scalar_type()));
    }
  }
  LoraSpec lora;
  lora.rank = adapter.config.r;
  lora.alpha = adapter.config.lora_alpha;
  lora.dropout = adapter.config.lora_dropout;
  lora.use_rslora = adapter.config.use_rslora;
  lora.target_modules = adapter.config.target_modules;
  model.set_lora_spec(lora, adapter.config.bias);
  model.SetTrainable(TrainableSet::kLora);
  return absl::OkStatus();
}

}  // namespace lora::core
