#include "lora_core/model_config.h"

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/json_util.h"
#include "base/status_macros.h"

namespace lora::core {
namespace {

using Json = nlohmann::json;

// Reads typed fields of one config.json, naming the source and key in every
// error.
class FieldReader {
 public:
  FieldReader(const Json& json, absl::string_view source)
      : json_(json), source_(source) {}

  // A positive integer up to `maximum`; `fallback` when the key is absent or
  // null (nullopt makes it required).
  absl::StatusOr<int64_t> PositiveInt(const char* key,
                                      std::optional<int64_t> fallback,
                                      int64_t maximum = 1'000'000) {
    LORA_ASSIGN_OR_RETURN(int64_t value, Int(key, fallback));
    if (value <= 0) return Error(key, "expected a positive integer", value);
    if (value > maximum) {
      return Error(key, absl::StrCat("expected at most ", maximum), value);
    }
    return value;
  }

  // Options that change the architecture in ways this implementation does
  // not: they must be absent or hold Hugging Face's default.
  absl::Status RequireDefault(const char* key, const Json& expected) {
    const Json* value = Find(key);
    if (value == nullptr || *value == expected) return absl::OkStatus();
    return Error(key,
                 absl::StrCat("only ", expected.dump(),
                              " is supported (the architecture would differ)"),
                 JsonExcerpt(*value));
  }

  absl::StatusOr<int64_t> Int(const char* key,
                              std::optional<int64_t> fallback) {
    const Json* value = Find(key);
    if (value == nullptr) {
      if (fallback.has_value()) return *fallback;
      return Missing(key);
    }
    if (!value->is_number_integer()) {
      return Error(key, "expected an integer", JsonExcerpt(*value));
    }
    return value->get<int64_t>();
  }

  // A probability in [0, 1).
  absl::StatusOr<double> Probability(const char* key, double fallback) {
    LORA_ASSIGN_OR_RETURN(double value, Number(key, fallback));
    if (value < 0 || value >= 1) {
      return Error(key, "expected a probability in [0, 1)", value);
    }
    return value;
  }

  absl::StatusOr<double> PositiveNumber(const char* key, double fallback) {
    LORA_ASSIGN_OR_RETURN(double value, Number(key, fallback));
    if (!(value > 0)) return Error(key, "expected a positive number", value);
    return value;
  }

  absl::StatusOr<std::string> String(const char* key,
                                     const std::string& fallback) {
    const Json* value = Find(key);
    if (value == nullptr) return fallback;
    if (!value->is_string()) {
      return Error(key, "expected a string", JsonExcerpt(*value));
    }
    return value->get<std::string>();
  }

  template <typename T>
  absl::Status Error(absl::string_view key, absl::string_view expected,
                     const T& got) const {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": ", key, ": ", expected, ", got ", got));
  }

 private:
  const Json* Find(const char* key) const {
    auto it = json_.find(key);
    if (it == json_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  absl::StatusOr<double> Number(const char* key, double fallback) {
    const Json* value = Find(key);
    if (value == nullptr) return fallback;
    if (!value->is_number()) {
      return Error(key, "expected a number", JsonExcerpt(*value));
    }
    return value->get<double>();
  }

  absl::Status Missing(absl::string_view key) const {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": ", key, ": required field is missing"));
  }

  const Json& json_;
  std::string source_;
};

absl::StatusOr<ModelConfig> ParseRoberta(FieldReader& fields) {
  ModelConfig config;
  config.architecture = Architecture::kRoberta;
  LORA_RETURN_IF_ERROR(
      fields.RequireDefault("position_embedding_type", "absolute"));
  LORA_RETURN_IF_ERROR(fields.RequireDefault("is_decoder", false));
  LORA_RETURN_IF_ERROR(fields.RequireDefault("add_cross_attention", false));
  LORA_ASSIGN_OR_RETURN(
      config.vocab_size,
      fields.PositiveInt("vocab_size", std::nullopt, 10'000'000));
  LORA_ASSIGN_OR_RETURN(config.hidden_size,
                        fields.PositiveInt("hidden_size", std::nullopt, 65536));
  LORA_ASSIGN_OR_RETURN(config.num_hidden_layers,
                        fields.PositiveInt("num_hidden_layers", std::nullopt));
  LORA_ASSIGN_OR_RETURN(
      config.num_attention_heads,
      fields.PositiveInt("num_attention_heads", std::nullopt));
  LORA_ASSIGN_OR_RETURN(config.intermediate_size,
                        fields.PositiveInt("intermediate_size", std::nullopt));
  LORA_ASSIGN_OR_RETURN(
      config.max_position_embeddings,
      fields.PositiveInt("max_position_embeddings", std::nullopt));
  // Defaults below are Hugging Face's RobertaConfig defaults.
  LORA_ASSIGN_OR_RETURN(config.type_vocab_size,
                        fields.PositiveInt("type_vocab_size", 2));
  LORA_ASSIGN_OR_RETURN(config.pad_token_id, fields.Int("pad_token_id", 1));
  LORA_ASSIGN_OR_RETURN(config.bos_token_id, fields.Int("bos_token_id", 0));
  LORA_ASSIGN_OR_RETURN(config.eos_token_id, fields.Int("eos_token_id", 2));
  LORA_ASSIGN_OR_RETURN(config.layer_norm_eps,
                        fields.PositiveNumber("layer_norm_eps", 1e-12));
  LORA_ASSIGN_OR_RETURN(config.hidden_dropout_prob,
                        fields.Probability("hidden_dropout_prob", 0.1));
  config.embedding_dropout_prob = config.hidden_dropout_prob;
  LORA_ASSIGN_OR_RETURN(
      config.attention_probs_dropout_prob,
      fields.Probability("attention_probs_dropout_prob", 0.1));
  LORA_ASSIGN_OR_RETURN(config.hidden_act, fields.String("hidden_act", "gelu"));
  LORA_ASSIGN_OR_RETURN(config.initializer_range,
                        fields.PositiveNumber("initializer_range", 0.02));
  LORA_ASSIGN_OR_RETURN(
      config.vocabulary,
      fields.String("lora_sweep_vocabulary", kRealRobertaVocabulary));
  if (config.vocabulary != kRealRobertaVocabulary &&
      config.vocabulary != kGpt2DerivedVocabulary) {
    return fields.Error("lora_sweep_vocabulary",
                        absl::StrCat("expected \"", kRealRobertaVocabulary,
                                     "\" or \"", kGpt2DerivedVocabulary, "\""),
                        config.vocabulary);
  }
  if (config.pad_token_id < 0 ||
      config.pad_token_id + 1 >= config.max_position_embeddings) {
    return fields.Error(
        "pad_token_id",
        absl::StrCat("expected 0 <= pad_token_id < max_position_embeddings - "
                     "1 = ",
                     config.max_position_embeddings - 1),
        config.pad_token_id);
  }
  if (config.pad_token_id >= config.vocab_size) {
    return fields.Error(
        "pad_token_id",
        absl::StrCat("expected an id below vocab_size ", config.vocab_size),
        config.pad_token_id);
  }
  return config;
}

absl::StatusOr<ModelConfig> ParseGpt2(FieldReader& fields) {
  ModelConfig config;
  config.architecture = Architecture::kGpt2;
  LORA_RETURN_IF_ERROR(fields.RequireDefault("scale_attn_weights", true));
  LORA_RETURN_IF_ERROR(
      fields.RequireDefault("scale_attn_by_inverse_layer_idx", false));
  LORA_RETURN_IF_ERROR(fields.RequireDefault("reorder_and_upcast_attn", false));
  // Defaults below are Hugging Face's GPT2Config defaults.
  LORA_ASSIGN_OR_RETURN(config.vocab_size,
                        fields.PositiveInt("vocab_size", 50257, 10'000'000));
  LORA_ASSIGN_OR_RETURN(config.max_position_embeddings,
                        fields.PositiveInt("n_positions", 1024));
  LORA_ASSIGN_OR_RETURN(config.hidden_size,
                        fields.PositiveInt("n_embd", 768, 65536));
  LORA_ASSIGN_OR_RETURN(config.num_hidden_layers,
                        fields.PositiveInt("n_layer", 12));
  LORA_ASSIGN_OR_RETURN(config.num_attention_heads,
                        fields.PositiveInt("n_head", 12));
  LORA_ASSIGN_OR_RETURN(config.intermediate_size,
                        fields.PositiveInt("n_inner", 4 * config.hidden_size));
  LORA_ASSIGN_OR_RETURN(config.hidden_act,
                        fields.String("activation_function", "gelu_new"));
  LORA_ASSIGN_OR_RETURN(config.hidden_dropout_prob,
                        fields.Probability("resid_pdrop", 0.1));
  LORA_ASSIGN_OR_RETURN(config.embedding_dropout_prob,
                        fields.Probability("embd_pdrop", 0.1));
  LORA_ASSIGN_OR_RETURN(config.attention_probs_dropout_prob,
                        fields.Probability("attn_pdrop", 0.1));
  LORA_ASSIGN_OR_RETURN(config.layer_norm_eps,
                        fields.PositiveNumber("layer_norm_epsilon", 1e-5));
  LORA_ASSIGN_OR_RETURN(config.initializer_range,
                        fields.PositiveNumber("initializer_range", 0.02));
  LORA_ASSIGN_OR_RETURN(config.bos_token_id, fields.Int("bos_token_id", 50256));
  LORA_ASSIGN_OR_RETURN(config.eos_token_id, fields.Int("eos_token_id", 50256));
  config.type_vocab_size = 0;
  config.pad_token_id = -1;
  config.vocabulary.clear();
  return config;
}

ModelConfig Roberta(std::string name, int64_t vocab, int64_t hidden,
                    int64_t layers, int64_t heads, int64_t intermediate,
                    int64_t max_positions, const char* vocabulary) {
  ModelConfig config;
  config.name = std::move(name);
  config.architecture = Architecture::kRoberta;
  config.vocab_size = vocab;
  config.hidden_size = hidden;
  config.num_hidden_layers = layers;
  config.num_attention_heads = heads;
  config.intermediate_size = intermediate;
  config.max_position_embeddings = max_positions;
  config.type_vocab_size = 1;
  config.pad_token_id = 1;
  config.bos_token_id = 0;
  config.eos_token_id = 2;
  config.layer_norm_eps = 1e-5;
  config.hidden_act = "gelu";
  config.vocabulary = vocabulary;
  return config;
}

ModelConfig Gpt2(std::string name, int64_t hidden, int64_t layers,
                 int64_t heads, int64_t positions) {
  ModelConfig config;
  config.name = std::move(name);
  config.architecture = Architecture::kGpt2;
  config.vocab_size = 50257;
  config.hidden_size = hidden;
  config.num_hidden_layers = layers;
  config.num_attention_heads = heads;
  config.intermediate_size = 4 * hidden;
  config.max_position_embeddings = positions;
  config.type_vocab_size = 0;
  config.pad_token_id = -1;
  config.bos_token_id = 50256;
  config.eos_token_id = 50256;
  config.layer_norm_eps = 1e-5;
  config.hidden_act = "gelu_new";
  config.vocabulary.clear();
  return config;
}

// GPT-2's 50,257 ids + <s> <pad> </s> <unk> + <mask>.
constexpr int64_t kDerivedRobertaVocabSize = 50257 + 4 + 1;

const std::map<std::string, ModelConfig>& Builtins() {
  static const auto* const builtins = new std::map<std::string, ModelConfig>{
      {"roberta-base", Roberta("roberta-base", 50265, 768, 12, 12, 3072, 514,
                               kRealRobertaVocabulary)},
      {"roberta-large", Roberta("roberta-large", 50265, 1024, 24, 16, 4096, 514,
                                kRealRobertaVocabulary)},
      {"roberta-tiny", Roberta("roberta-tiny", kDerivedRobertaVocabSize, 32, 2,
                               4, 64, 130, kGpt2DerivedVocabulary)},
      {"roberta-mini", Roberta("roberta-mini", kDerivedRobertaVocabSize, 256, 4,
                               4, 1024, 130, kGpt2DerivedVocabulary)},
      {"gpt2", Gpt2("gpt2", 768, 12, 12, 1024)},
      {"gpt2-medium", Gpt2("gpt2-medium", 1024, 24, 16, 1024)},
      {"gpt2-tiny", Gpt2("gpt2-tiny", 32, 2, 4, 128)},
      {"gpt2-mini", Gpt2("gpt2-mini", 256, 4, 4, 256)},
  };
  return *builtins;
}

}  // namespace

std::string ArchitectureName(Architecture architecture) {
  return architecture == Architecture::kGpt2 ? "gpt2" : "roberta";
}

absl::StatusOr<ModelConfig> ParseModelConfigJson(absl::string_view json_text,
                                                 absl::string_view source) {
  // Real configs nest at most a few levels (id2label, task_specific_params).
  if (JsonNestingDepth(json_text) > 8) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": JSON nests too deeply for a model config"));
  }
  Json json = Json::parse(json_text.begin(), json_text.end(),
                          /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not valid JSON"));
  }
  if (!json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": expected a JSON object, got ", JsonExcerpt(json)));
  }
  FieldReader fields(json, source);
  LORA_ASSIGN_OR_RETURN(std::string model_type,
                        fields.String("model_type", ""));
  absl::StatusOr<ModelConfig> config;
  if (model_type == "roberta") {
    config = ParseRoberta(fields);
  } else if (model_type == "gpt2") {
    config = ParseGpt2(fields);
  } else {
    return fields.Error("model_type", "expected \"roberta\" or \"gpt2\"",
                        model_type.empty() ? "nothing" : model_type);
  }
  if (!config.ok()) return config.status();
  if (config->hidden_size % config->num_attention_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": hidden size ", config->hidden_size,
                     " is not divisible by the number of attention heads ",
                     config->num_attention_heads));
  }
  if (config->hidden_act != "gelu" && config->hidden_act != "gelu_new") {
    return fields.Error(
        config->architecture == Architecture::kGpt2 ? "activation_function"
                                                    : "hidden_act",
        "expected \"gelu\" or \"gelu_new\"", config->hidden_act);
  }
  LORA_ASSIGN_OR_RETURN(config->name, fields.String("_name_or_path", ""));
  return config;
}

absl::StatusOr<ModelConfig> LoadModelConfigFromDirectory(
    const std::string& directory) {
  const std::string path = directory + "/config.json";
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  std::ostringstream text;
  text << file.rdbuf();
  LORA_ASSIGN_OR_RETURN(ModelConfig config,
                        ParseModelConfigJson(text.str(), path));
  std::string trimmed = directory;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  config.name = trimmed.substr(trimmed.rfind('/') + 1);
  return config;
}

std::string ModelConfigToJson(const ModelConfig& config,
                              const std::string& architecture,
                              int64_t num_labels) {
  Json json;
  if (config.architecture == Architecture::kRoberta) {
    json["model_type"] = "roberta";
    json["architectures"] = {"RobertaModel"};
    json["vocab_size"] = config.vocab_size;
    json["hidden_size"] = config.hidden_size;
    json["num_hidden_layers"] = config.num_hidden_layers;
    json["num_attention_heads"] = config.num_attention_heads;
    json["intermediate_size"] = config.intermediate_size;
    json["max_position_embeddings"] = config.max_position_embeddings;
    json["type_vocab_size"] = config.type_vocab_size;
    json["pad_token_id"] = config.pad_token_id;
    json["bos_token_id"] = config.bos_token_id;
    json["eos_token_id"] = config.eos_token_id;
    json["layer_norm_eps"] = config.layer_norm_eps;
    json["hidden_dropout_prob"] = config.hidden_dropout_prob;
    json["attention_probs_dropout_prob"] = config.attention_probs_dropout_prob;
    json["hidden_act"] = config.hidden_act;
    json["initializer_range"] = config.initializer_range;
    json["lora_sweep_vocabulary"] = config.vocabulary;
  } else {
    json["model_type"] = "gpt2";
    json["architectures"] = {"GPT2LMHeadModel"};
    json["vocab_size"] = config.vocab_size;
    json["n_positions"] = config.max_position_embeddings;
    json["n_embd"] = config.hidden_size;
    json["n_layer"] = config.num_hidden_layers;
    json["n_head"] = config.num_attention_heads;
    json["n_inner"] = config.intermediate_size;
    json["activation_function"] = config.hidden_act;
    json["resid_pdrop"] = config.hidden_dropout_prob;
    json["embd_pdrop"] = config.embedding_dropout_prob;
    json["attn_pdrop"] = config.attention_probs_dropout_prob;
    json["layer_norm_epsilon"] = config.layer_norm_eps;
    json["initializer_range"] = config.initializer_range;
    json["bos_token_id"] = config.bos_token_id;
    json["eos_token_id"] = config.eos_token_id;
  }
  if (!architecture.empty()) json["architectures"] = {architecture};
  if (num_labels > 0) {
    Json id2label = Json::object(), label2id = Json::object();
    for (int64_t label = 0; label < num_labels; ++label) {
      const std::string name = absl::StrCat("LABEL_", label);
      id2label[std::to_string(label)] = name;
      label2id[name] = label;
    }
    json["id2label"] = id2label;
    json["label2id"] = label2id;
  }
  if (!config.name.empty()) json["_name_or_path"] = config.name;
  return json.dump(2) + "\n";
}

absl::StatusOr<ModelConfig> BuiltinModelConfig(absl::string_view name) {
  auto it = Builtins().find(std::string(name));
  if (it == Builtins().end()) {
    return absl::NotFoundError(
        absl::StrCat("unknown model \"", name, "\"; built-in models are ",
                     absl::StrJoin(BuiltinModelNames(), ", ")));
  }
  return it->second;
}

std::vector<std::string> BuiltinModelNames() {
  std::vector<std::string> names;
  for (const auto& [name, config] : Builtins()) names.push_back(name);
  return names;
}

int64_t LongestUsableSequence(const ModelConfig& config) {
  if (config.architecture == Architecture::kRoberta) {
    return config.max_position_embeddings - config.pad_token_id - 1;
  }
  return config.max_position_embeddings;
}

}  // namespace lora::core
