#include "lora_core/model_layout.h"

#include <set>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"

namespace lora::core {
namespace {

bool UsesPooler(HeadKind head) {
  return head == HeadKind::kNone || head == HeadKind::kLinearOnPooler;
}

bool IsClassificationHead(HeadKind head) {
  return head == HeadKind::kLinearOnPooler ||
         head == HeadKind::kRobertaClassification;
}

// The segment a GPT-2 attention target selects inside c_attn, or -1.
int FusedAttentionSegment(absl::string_view target) {
  if (target == "query") return 0;
  if (target == "key") return 1;
  if (target == "value") return 2;
  return -1;
}

bool PathMatches(absl::string_view path, absl::string_view target) {
  return path == target || absl::EndsWith(path, absl::StrCat(".", target));
}

// Last path component, for listing what exists in error messages.
std::string ShortName(const std::string& path) {
  // Keep "attention.output.dense" style names distinguishable from
  // "output.dense" by using the part after the layer index.
  std::size_t layer = path.find(".layer.");
  std::size_t h = path.find(".h.");
  std::size_t start = std::string::npos;
  if (layer != std::string::npos) start = path.find('.', layer + 7);
  if (h != std::string::npos) start = path.find('.', h + 3);
  if (start == std::string::npos) return path;
  return path.substr(start + 1);
}

// Parameters named "bias" outside linear layers (LayerNorms).
int64_t LayerNormBiases(const ModelConfig& config) {
  const int64_t h = config.hidden_size;
  // RoBERTa: embeddings LN + 2 per layer. GPT-2: 2 per layer + ln_f.
  return h * (2 * config.num_hidden_layers + 1);
}

int64_t BackboneParameters(const ModelConfig& config, HeadKind head) {
  const int64_t h = config.hidden_size;
  const int64_t i = config.intermediate_size;
  const int64_t layers = config.num_hidden_layers;
  int64_t count = config.vocab_size * h + config.max_position_embeddings * h;
  if (config.architecture == Architecture::kRoberta) {
    count += config.type_vocab_size * h + 2 * h;  // + embeddings.LayerNorm
    const int64_t attention = 4 * (h * h + h) + 2 * h;
    const int64_t feed_forward = (h * i + i) + (i * h + h) + 2 * h;
    count += layers * (attention + feed_forward);
    if (UsesPooler(head)) count += h * h + h;
  } else {
    const int64_t attention = 2 * h + (h * 3 * h + 3 * h) + (h * h + h);
    const int64_t feed_forward = 2 * h + (h * i + i) + (i * h + h);
    count += layers * (attention + feed_forward) + 2 * h;  // + ln_f
  }
  return count;
}

int64_t HeadParameters(const ModelConfig& config, const ModelSpec& spec) {
  const int64_t h = config.hidden_size;
  const int64_t labels = spec.num_labels;
  switch (spec.head) {
    case HeadKind::kNone:
    case HeadKind::kGpt2LanguageModel:
      return 0;
    case HeadKind::kLinearOnPooler:
      return h * labels + labels;
    case HeadKind::kRobertaClassification:
      return (h * h + h) + (h * labels + labels);
    case HeadKind::kRobertaMaskedLm:
      // dense, layer_norm, bias over the vocabulary; decoder tied.
      return (h * h + h) + 2 * h + config.vocab_size;
  }
  return 0;
}

}  // namespace

std::string HeadKindName(HeadKind head) {
  switch (head) {
    case HeadKind::kNone:
      return "none";
    case HeadKind::kLinearOnPooler:
      return "linear_pooled";
    case HeadKind::kRobertaClassification:
      return "roberta_classification";
    case HeadKind::kRobertaMaskedLm:
      return "mlm";
    case HeadKind::kGpt2LanguageModel:
      return "lm";
  }
  return "none";
}

absl::StatusOr<HeadKind> ParseHeadKind(absl::string_view name) {
  for (HeadKind head :
       {HeadKind::kNone, HeadKind::kLinearOnPooler,
        HeadKind::kRobertaClassification, HeadKind::kRobertaMaskedLm,
        HeadKind::kGpt2LanguageModel}) {
    if (HeadKindName(head) == name) return head;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "head: expected one of none, linear_pooled, roberta_classification, "
      "mlm, lm; got \"",
      name, "\""));
}

bool HeadFitsArchitecture(HeadKind head, Architecture architecture) {
  switch (head) {
    case HeadKind::kNone:
      return true;
    case HeadKind::kGpt2LanguageModel:
      return architecture == Architecture::kGpt2;
    default:
      return architecture == Architecture::kRoberta;
  }
}

std::string BackbonePrefix(Architecture architecture) {
  return architecture == Architecture::kGpt2 ? "transformer." : "roberta.";
}

std::vector<LinearLayer> LinearLayersOf(const ModelConfig& config,
                                        HeadKind head, int64_t num_labels) {
  const int64_t h = config.hidden_size;
  const int64_t i = config.intermediate_size;
  const std::string prefix = BackbonePrefix(config.architecture);
  std::vector<LinearLayer> layers;
  auto add = [&layers](std::string path, int64_t in, int64_t out,
                       bool fan_in_fan_out, bool in_head, int segments) {
    layers.push_back(LinearLayer{std::move(path), in, out, fan_in_fan_out,
                                 in_head, segments});
  };
  for (int64_t n = 0; n < config.num_hidden_layers; ++n) {
    if (config.architecture == Architecture::kRoberta) {
      const std::string layer = absl::StrCat(prefix, "encoder.layer.", n, ".");
      add(layer + "attention.self.query", h, h, false, false, 1);
      add(layer + "attention.self.key", h, h, false, false, 1);
      add(layer + "attention.self.value", h, h, false, false, 1);
      add(layer + "attention.output.dense", h, h, false, false, 1);
      add(layer + "intermediate.dense", h, i, false, false, 1);
      add(layer + "output.dense", i, h, false, false, 1);
    } else {
      const std::string layer = absl::StrCat(prefix, "h.", n, ".");
      add(layer + "attn.c_attn", h, 3 * h, true, false, 3);
      add(layer + "attn.c_proj", h, h, true, false, 1);
      add(layer + "mlp.c_fc", h, i, true, false, 1);
      add(layer + "mlp.c_proj", i, h, true, false, 1);
    }
  }
  if (config.architecture == Architecture::kRoberta) {
    if (UsesPooler(head)) add(prefix + "pooler.dense", h, h, false, false, 1);
  }
  switch (head) {
    case HeadKind::kLinearOnPooler:
      add("classifier", h, num_labels, false, true, 1);
      break;
    case HeadKind::kRobertaClassification:
      add("classifier.dense", h, h, false, true, 1);
      add("classifier.out_proj", h, num_labels, false, true, 1);
      break;
    case HeadKind::kRobertaMaskedLm:
      add("lm_head.dense", h, h, false, true, 1);
      break;
    default:
      break;
  }
  return layers;
}

absl::StatusOr<std::vector<LoraPlacement>> PlaceLora(const ModelConfig& config,
                                                     HeadKind head,
                                                     const LoraSpec& lora) {
  if (lora.rank < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("lora.rank must be >= 1, got ", lora.rank));
  }
  std::vector<LoraPlacement> placements;
  if (lora.rank == 0) return placements;
  if (lora.target_modules.empty()) {
    return absl::InvalidArgumentError(
        "lora.target_modules: at least one target module is needed");
  }
  const bool gpt2 = config.architecture == Architecture::kGpt2;
  std::vector<bool> fused_segments(3, false);
  bool whole_c_attn = false;
  std::set<std::string> whole_targets;
  for (const std::string& target : lora.target_modules) {
    const int segment = gpt2 ? FusedAttentionSegment(target) : -1;
    if (segment >= 0) {
      fused_segments[segment] = true;
    } else {
      whole_targets.insert(target);
      if (gpt2 && (target == "c_attn" || PathMatches("attn.c_attn", target))) {
        whole_c_attn = true;
      }
    }
  }
  const bool any_segment =
      fused_segments[0] || fused_segments[1] || fused_segments[2];
  if (whole_c_attn && any_segment) {
    return absl::InvalidArgumentError(
        "lora.target_modules: \"c_attn\" (the whole fused projection) cannot "
        "be combined with \"query\", \"key\" or \"value\" (parts of it) on "
        "GPT-2");
  }
  const std::vector<LinearLayer> layers = LinearLayersOf(config, head);
  std::set<std::string> matched;
  for (const LinearLayer& layer : layers) {
    if (layer.in_head) continue;
    bool whole = false;
    for (const std::string& target : whole_targets) {
      if (PathMatches(layer.path, target)) {
        whole = true;
        matched.insert(target);
      }
    }
    if (whole) {
      placements.push_back(LoraPlacement{layer, {}});
    } else if (any_segment && layer.segments == 3) {
      placements.push_back(LoraPlacement{layer, fused_segments});
      for (const char* name : {"query", "key", "value"}) {
        if (fused_segments[FusedAttentionSegment(name)]) matched.insert(name);
      }
    }
  }
  for (const std::string& target : lora.target_modules) {
    if (matched.count(target) > 0) continue;
    std::set<std::string> names;
    for (const LinearLayer& layer : layers) {
      if (!layer.in_head) names.insert(ShortName(layer.path));
    }
    if (gpt2) names.insert({"query", "key", "value"});
    return absl::InvalidArgumentError(absl::StrCat(
        "lora.target_modules: \"", target, "\" matches no linear layer of ",
        config.name.empty() ? ArchitectureName(config.architecture)
                            : config.name,
        "; its layers are ", absl::StrJoin(names, ", ")));
  }
  return placements;
}

int64_t LoraParameterCount(const LoraPlacement& placement, int64_t rank) {
  const LinearLayer& layer = placement.layer;
  if (placement.enabled_segments.empty()) {
    return rank * (layer.in_features + layer.out_features);
  }
  const int64_t segment_out = layer.out_features / layer.segments;
  int64_t count = 0;
  for (bool enabled : placement.enabled_segments) {
    if (enabled) count += rank * layer.in_features + segment_out * rank;
  }
  return count;
}

absl::StatusOr<ParameterCounts> CountParameters(const ModelConfig& config,
                                                const ModelSpec& spec) {
  if (!HeadFitsArchitecture(spec.head, config.architecture)) {
    return absl::InvalidArgumentError(
        absl::StrCat("head \"", HeadKindName(spec.head), "\" does not fit a ",
                     ArchitectureName(config.architecture), " model"));
  }
  if (IsClassificationHead(spec.head) && spec.num_labels < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_labels must be >= 1, got ", spec.num_labels));
  }
  if (spec.bias != "none" && spec.bias != "all" && spec.bias != "lora_only") {
    return absl::InvalidArgumentError(absl::StrCat(
        "lora.bias: expected none, all or lora_only; got \"", spec.bias, "\""));
  }
  LORA_ASSIGN_OR_RETURN(std::vector<LoraPlacement> placements,
                        PlaceLora(config, spec.head, spec.lora));
  ParameterCounts counts;
  counts.base = BackboneParameters(config, spec.head);
  counts.head = HeadParameters(config, spec);
  for (const LoraPlacement& placement : placements) {
    counts.lora += LoraParameterCount(placement, spec.lora.rank);
  }
  counts.total = counts.base + counts.lora + counts.head;
  switch (spec.trainable) {
    case TrainableSet::kFull:
      counts.trainable = counts.total;
      break;
    case TrainableSet::kHeadOnly:
      counts.trainable = counts.head;
      break;
    case TrainableSet::kLora:
      counts.trainable = counts.lora + counts.head;
      if (spec.bias == "all") {
        int64_t biases = LayerNormBiases(config);
        for (const LinearLayer& layer : LinearLayersOf(config, spec.head)) {
          if (!layer.in_head) biases += layer.out_features;
        }
        counts.trainable += biases;
      } else if (spec.bias == "lora_only") {
        for (const LoraPlacement& placement : placements) {
          counts.trainable += placement.layer.out_features;
        }
      }
      break;
  }
  return counts;
}

}  // namespace lora::core
