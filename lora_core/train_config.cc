#include "lora_core/train_config.h"

#include <yaml-cpp/yaml.h>

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "base/yaml_fields.h"

namespace lora::core {
namespace {

using Fields = YamlFields;
using Handler = YamlFields::Handler;

}  // namespace

std::string AmpModeName(AmpMode mode) {
  switch (mode) {
    case AmpMode::kOff:
      return "off";
    case AmpMode::kBf16:
      return "bf16";
    case AmpMode::kFp16:
      return "fp16";
  }
  return "off";
}

absl::StatusOr<TrainConfig> ParseTrainConfig(const std::string& text,
                                             const std::string& source) {
  LORA_ASSIGN_OR_RETURN(YAML::Node root, LoadYamlDocument(text, source));
  return ParseTrainConfigNode(root, source);
}

absl::StatusOr<TrainConfig> ParseTrainConfigNode(const YAML::Node& root,
                                                 const std::string& source) {
  Fields fields(source);
  TrainConfig config;
  config.lora.rank = 4;
  config.lora.alpha = 16;
  bool head_given = false, metric_given = false, batch_size_given = false;
  YAML::Node fp16_node, head_node, batch_size_node, world_size_node;

  auto assign_int = [&](int64_t* target, int64_t minimum) -> Handler {
    return [&fields, target, minimum](const YAML::Node& node,
                                      const std::string& key) -> absl::Status {
      LORA_ASSIGN_OR_RETURN(*target, fields.Int(node, key, minimum));
      return absl::OkStatus();
    };
  };
  auto assign_number = [&](double* target, double minimum, double maximum,
                           bool exclusive_minimum,
                           bool exclusive_maximum) -> Handler {
    return [&fields, target, minimum, maximum, exclusive_minimum,
            exclusive_maximum](const YAML::Node& node,
                               const std::string& key) -> absl::Status {
      LORA_ASSIGN_OR_RETURN(
          *target, fields.Number(node, key, minimum, maximum, exclusive_minimum,
                                 exclusive_maximum));
      return absl::OkStatus();
    };
  };
  auto assign_string = [&](std::string* target) -> Handler {
    return [&fields, target](const YAML::Node& node,
                             const std::string& key) -> absl::Status {
      LORA_ASSIGN_OR_RETURN(*target, fields.String(node, key));
      return absl::OkStatus();
    };
  };
  const double kHuge = 1e300;

  std::map<std::string, Handler> lora_keys = {
      {"rank", assign_int(&config.lora.rank, 1)},
      {"alpha", assign_number(&config.lora.alpha, 0, kHuge, true, false)},
      {"dropout", assign_number(&config.lora.dropout, 0, 1, false, true)},
      {"target_modules",
       [&](const YAML::Node& node, const std::string& key) -> absl::Status {
         LORA_ASSIGN_OR_RETURN(config.lora.target_modules,
                               fields.Strings(node, key));
         if (config.lora.target_modules.empty()) {
           return fields.Error(node, key, "expected at least one module");
         }
         return absl::OkStatus();
       }},
      {"use_rslora",
       [&](const YAML::Node& node, const std::string& key) -> absl::Status {
         LORA_ASSIGN_OR_RETURN(config.lora.use_rslora, fields.Bool(node, key));
         return absl::OkStatus();
       }},
      {"bias",
       [&](const YAML::Node& node, const std::string& key) -> absl::Status {
         LORA_ASSIGN_OR_RETURN(
             config.lora_bias,
             fields.OneOf(node, key, {"none", "all", "lora_only"}));
         return absl::OkStatus();
       }},
  };
  std::map<std::string, Handler> metric_keys = {
      {"name", assign_string(&config.metric_name)},
      {"goal",
       [&](const YAML::Node& node, const std::string& key) -> absl::Status {
         LORA_ASSIGN_OR_RETURN(
             std::string goal,
             fields.OneOf(node, key, {"maximize", "minimize"}));
         config.metric_maximize = goal == "maximize";
         return absl::OkStatus();
       }},
  };
  std::map<std::string, Handler> generation_keys = {
      {"beam_size", assign_int(&config.generation.beam_size, 1)},
      {"length_penalty", assign_number(&config.generation.length_penalty,
                                       -kHuge, kHuge, false, false)},
      {"no_repeat_ngram_size",
       assign_int(&config.generation.no_repeat_ngram_size, 0)},
      {"max_new_tokens", assign_int(&config.generation.max_new_tokens, 1)},
      {"eval_examples", assign_int(&config.generation.eval_examples, 0)},
  };
  int64_t e2e_seed = static_cast<int64_t>(config.e2e_seed);
  std::map<std::string, Handler> e2e_keys = {
      {"train_mrs", assign_int(&config.e2e_train_mrs, 1)},
      {"validation_mrs", assign_int(&config.e2e_validation_mrs, 1)},
      {"seed", assign_int(&e2e_seed, 0)},
  };
  int64_t seed = 0;
  std::map<std::string, Handler> top = {
      {"model", assign_string(&config.model)},
      {"task",
       [&](const YAML::Node& node, const std::string& key) -> absl::Status {
         LORA_ASSIGN_OR_RETURN(std::string name, fields.String(node, key));
         absl::StatusOr<DataTask> task = ParseDataTask(name);
         if (!task.ok()) {
           return fields.Error(node, key,
                               "expected one of sst2, polarity, text, e2e; got "
                               "\"" +
                                   name + "\"");
         }
         config.task = *task;
         return absl::OkStatus();
       }},
      {"data_dir", assign_string(&config.data_dir)},
      {"corpus_files",
       [&](const YAML::Node& node, const std::string& key) -> absl::Status {
         LORA_ASSIGN_OR_RETURN(config.corpus_files, fields.Strings(node, key));
         return absl::OkStatus();
       }},
      {"head",
       [&](const YAML::Node& node, const std::string& key) -> absl::Status {
         LORA_ASSIGN_OR_RETURN(
             std::string name,
             fields.OneOf(node, key,
                          {"none", "linear_pooled", "roberta_classification",
                           "mlm", "lm"}));
         config.head = *ParseHeadKind(name);
         head_given = true;
         head_node = node;
         return absl::OkStatus();
       }},
      {"num_labels", assign_int(&config.num_labels, 1)},
      {"lora",
       [&](const YAML::Node& node, const std::string& key) {
         return fields.ForEachKey(node, key, lora_keys);
       }},
      {"trainable",
       [&](const YAML::Node& node, const std::string& key) -> absl::Status {
         LORA_ASSIGN_OR_RETURN(
             std::string set,
             fields.OneOf(node, key, {"lora", "full", "head_only"}));
         config.trainable = set == "lora"   ? TrainableSet::kLora
                            : set == "full" ? TrainableSet::kFull
                                            : TrainableSet::kHeadOnly;
         return absl::OkStatus();
       }},
      {"epochs", assign_int(&config.epochs, 1)},
      {"batch_size",
       [&](const YAML::Node& node, const std::string& key) -> absl::Status {
         LORA_ASSIGN_OR_RETURN(config.batch_size, fields.Int(node, key, 1));
         batch_size_node = node;
         batch_size_given = true;
         return absl::OkStatus();
       }},
      {"eval_batch_size", assign_int(&config.eval_batch_size, 1)},
      {"grad_accum_steps", assign_int(&config.grad_accum_steps, 1)},
      {"lr", assign_number(&config.lr, 0, kHuge, true, false)},
      {"weight_decay",
       assign_number(&config.weight_decay, 0, kHuge, false, false)},
      {"warmup_ratio", assign_number(&config.warmup_ratio, 0, 1, false, true)},
      {"max_grad_norm",
       assign_number(&config.max_grad_norm, 0, kHuge, false, false)},
      {"label_smoothing",
       assign_number(&config.label_smoothing, 0, 1, false, true)},
      {"max_seq_len", assign_int(&config.max_seq_len, 2)},
      {"amp",
       [&](const YAML::Node& node, const std::string& key) -> absl::Status {
         LORA_ASSIGN_OR_RETURN(
             std::string amp, fields.OneOf(node, key, {"off", "bf16", "fp16"}));
         config.amp = amp == "off"    ? AmpMode::kOff
                      : amp == "bf16" ? AmpMode::kBf16
                                      : AmpMode::kFp16;
         if (config.amp == AmpMode::kFp16) fp16_node = node;
         return absl::OkStatus();
       }},
      {"seed", assign_int(&seed, 0)},
      {"threads", assign_int(&config.threads, 1)},
      {"device",
       [&](const YAML::Node& node, const std::string& key) -> absl::Status {
         LORA_ASSIGN_OR_RETURN(config.device, fields.String(node, key));
         if (config.device != "cpu" && config.device.rfind("cuda", 0) != 0) {
           return fields.Error(
               node, key,
               "expected cpu, cuda or cuda:N; got \"" + config.device + "\"");
         }
         return absl::OkStatus();
       }},
      {"metric",
       [&](const YAML::Node& node, const std::string& key) {
         metric_given = true;
         return fields.ForEachKey(node, key, metric_keys);
       }},
      {"early_stopping_patience",
       assign_int(&config.early_stopping_patience, 0)},
      {"output_dir", assign_string(&config.output_dir)},
      {"resume",
       [&](const YAML::Node& node, const std::string& key) -> absl::Status {
         LORA_ASSIGN_OR_RETURN(config.resume, fields.Bool(node, key));
         return absl::OkStatus();
       }},
      {"checkpoint_every_steps", assign_int(&config.checkpoint_every_steps, 0)},
      {"max_steps", assign_int(&config.max_steps, 0)},
      {"max_train_examples", assign_int(&config.max_train_examples, 0)},
      {"world_size",
       [&](const YAML::Node& node, const std::string& key) -> absl::Status {
         LORA_ASSIGN_OR_RETURN(config.world_size, fields.Int(node, key, 1));
         world_size_node = node;
         return absl::OkStatus();
       }},
      {"log_every_steps", assign_int(&config.log_every_steps, 1)},
      {"generation",
       [&](const YAML::Node& node, const std::string& key) {
         return fields.ForEachKey(node, key, generation_keys);
       }},
      {"e2e",
       [&](const YAML::Node& node, const std::string& key) {
         return fields.ForEachKey(node, key, e2e_keys);
       }},
      {"cache_dir", assign_string(&config.cache_dir)},
  };
  LORA_RETURN_IF_ERROR(fields.ForEachKey(root, "", top));
  config.seed = static_cast<uint64_t>(seed);
  config.e2e_seed = static_cast<uint64_t>(e2e_seed);

  if (config.model.empty() || !root["task"]) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", config.model.empty() ? "model" : "task",
                     ": required key is missing"));
  }
  if (config.amp == AmpMode::kFp16 && config.device.rfind("cuda", 0) != 0) {
    return fields.Error(fp16_node, "amp",
                        "fp16 needs device: cuda (LibTorch's CPU autocast "
                        "supports bf16 only); use amp: bf16 on CPU");
  }
  if (config.batch_size % config.world_size != 0) {
    // world_size > 1 is given; batch_size may be the default.
    const std::string why = " (each rank takes an equal share of the batch)";
    if (batch_size_given) {
      return fields.Error(
          batch_size_node, "batch_size",
          absl::StrCat(config.batch_size, " is not divisible by world_size ",
                       config.world_size, why));
    }
    return fields.Error(
        world_size_node, "world_size",
        absl::StrCat(config.world_size, " does not divide batch_size ",
                     config.batch_size, " (the default)", why));
  }
  // Defaults that depend on the task.
  const bool classification =
      config.task == DataTask::kSst2 || config.task == DataTask::kPolarity;
  if (!head_given) {
    config.head = classification ? HeadKind::kLinearOnPooler
                  : config.task == DataTask::kE2e
                      ? HeadKind::kGpt2LanguageModel
                      : HeadKind::kNone;  // text: mlm or lm by model
  } else {
    const bool classifier_head =
        config.head == HeadKind::kLinearOnPooler ||
        config.head == HeadKind::kRobertaClassification;
    if (classifier_head != classification || config.head == HeadKind::kNone) {
      return fields.Error(head_node, "head",
                          "head \"" + HeadKindName(config.head) +
                              "\" does not fit task \"" +
                              DataTaskName(config.task) + "\"");
    }
  }
  if (!metric_given || config.metric_name.empty()) {
    config.metric_name = classification ? "val_accuracy" : "val_loss";
    config.metric_maximize = classification;
  }
  if (config.trainable == TrainableSet::kLora && config.lora.rank > 0 &&
      config.lora.target_modules.empty()) {
    config.lora.target_modules = {"query", "value"};
  }
  return config;
}

absl::StatusOr<TrainConfig> LoadTrainConfig(const std::string& path) {
  LORA_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParseTrainConfig(text, path);
}

std::string TrainConfigToYaml(const TrainConfig& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "model" << YAML::Value << c.model;
  out << YAML::Key << "task" << YAML::Value << DataTaskName(c.task);
  if (!c.data_dir.empty())
    out << YAML::Key << "data_dir" << YAML::Value << c.data_dir;
  if (!c.corpus_files.empty()) {
    out << YAML::Key << "corpus_files" << YAML::Value << YAML::Flow
        << c.corpus_files;
  }
  if (c.head != HeadKind::kNone) {
    out << YAML::Key << "head" << YAML::Value << HeadKindName(c.head);
  }
  out << YAML::Key << "num_labels" << YAML::Value << c.num_labels;
  if (c.lora.rank > 0) {
    out << YAML::Key << "lora" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "rank" << YAML::Value << c.lora.rank;
    out << YAML::Key << "alpha" << YAML::Value << c.lora.alpha;
    out << YAML::Key << "dropout" << YAML::Value << c.lora.dropout;
    out << YAML::Key << "target_modules" << YAML::Value << YAML::Flow
        << c.lora.target_modules;
    out << YAML::Key << "use_rslora" << YAML::Value << c.lora.use_rslora;
    out << YAML::Key << "bias" << YAML::Value << c.lora_bias;
    out << YAML::EndMap;
  }
  out << YAML::Key << "trainable" << YAML::Value
      << (c.trainable == TrainableSet::kLora   ? "lora"
          : c.trainable == TrainableSet::kFull ? "full"
                                               : "head_only");
  out << YAML::Key << "epochs" << YAML::Value << c.epochs;
  out << YAML::Key << "batch_size" << YAML::Value << c.batch_size;
  out << YAML::Key << "eval_batch_size" << YAML::Value << c.eval_batch_size;
  out << YAML::Key << "grad_accum_steps" << YAML::Value << c.grad_accum_steps;
  out << YAML::Key << "lr" << YAML::Value << c.lr;
  out << YAML::Key << "weight_decay" << YAML::Value << c.weight_decay;
  out << YAML::Key << "warmup_ratio" << YAML::Value << c.warmup_ratio;
  out << YAML::Key << "max_grad_norm" << YAML::Value << c.max_grad_norm;
  out << YAML::Key << "label_smoothing" << YAML::Value << c.label_smoothing;
  out << YAML::Key << "max_seq_len" << YAML::Value << c.max_seq_len;
  out << YAML::Key << "amp" << YAML::Value << AmpModeName(c.amp);
  out << YAML::Key << "seed" << YAML::Value << static_cast<int64_t>(c.seed);
  out << YAML::Key << "threads" << YAML::Value << c.threads;
  out << YAML::Key << "device" << YAML::Value << c.device;
  out << YAML::Key << "metric" << YAML::Value << YAML::Flow << YAML::BeginMap
      << YAML::Key << "name" << YAML::Value << c.metric_name << YAML::Key
      << "goal" << YAML::Value << (c.metric_maximize ? "maximize" : "minimize")
      << YAML::EndMap;
  out << YAML::Key << "early_stopping_patience" << YAML::Value
      << c.early_stopping_patience;
  if (!c.output_dir.empty()) {
    out << YAML::Key << "output_dir" << YAML::Value << c.output_dir;
  }
  out << YAML::Key << "resume" << YAML::Value << c.resume;
  out << YAML::Key << "checkpoint_every_steps" << YAML::Value
      << c.checkpoint_every_steps;
  out << YAML::Key << "max_steps" << YAML::Value << c.max_steps;
  out << YAML::Key << "log_every_steps" << YAML::Value << c.log_every_steps;
  // Only when set, as world_size below: earlier jobs' YAML and checkpoint
  // fingerprints stay as they were.
  if (c.max_train_examples != 0) {
    out << YAML::Key << "max_train_examples" << YAML::Value
        << c.max_train_examples;
  }
  // Only when set, so the YAML (and checkpoint fingerprints) of
  // single-process jobs stay as they were.
  if (c.world_size != 1) {
    out << YAML::Key << "world_size" << YAML::Value << c.world_size;
  }
  out << YAML::Key << "generation" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "beam_size" << YAML::Value << c.generation.beam_size;
  out << YAML::Key << "length_penalty" << YAML::Value
      << c.generation.length_penalty;
  out << YAML::Key << "no_repeat_ngram_size" << YAML::Value
      << c.generation.no_repeat_ngram_size;
  out << YAML::Key << "max_new_tokens" << YAML::Value
      << c.generation.max_new_tokens;
  out << YAML::Key << "eval_examples" << YAML::Value
      << c.generation.eval_examples;
  out << YAML::EndMap;
  out << YAML::Key << "e2e" << YAML::Value << YAML::Flow << YAML::BeginMap
      << YAML::Key << "train_mrs" << YAML::Value << c.e2e_train_mrs << YAML::Key
      << "validation_mrs" << YAML::Value << c.e2e_validation_mrs << YAML::Key
      << "seed" << YAML::Value << static_cast<int64_t>(c.e2e_seed)
      << YAML::EndMap;
  if (!c.cache_dir.empty()) {
    out << YAML::Key << "cache_dir" << YAML::Value << c.cache_dir;
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

ModelSpec ToModelSpec(const TrainConfig& config) {
  ModelSpec spec;
  spec.head = config.head;
  spec.num_labels = config.num_labels;
  spec.trainable = config.trainable;
  spec.bias = config.lora_bias;
  if (config.trainable == TrainableSet::kLora) spec.lora = config.lora;
  return spec;
}

TaskDataOptions ToTaskDataOptions(const TrainConfig& config) {
  TaskDataOptions options;
  options.task = config.task;
  options.data_dir = config.data_dir;
  options.corpus_files = config.corpus_files;
  options.max_seq_len = config.max_seq_len;
  options.e2e_train_mrs = static_cast<int>(config.e2e_train_mrs);
  options.e2e_validation_mrs = static_cast<int>(config.e2e_validation_mrs);
  options.e2e_seed = config.e2e_seed;
  options.cache_dir = config.cache_dir.empty() ? DefaultDatasetCacheDirectory()
                                               : config.cache_dir;
  return options;
}

}  // namespace lora::core
