#include "lora_core/model_config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lora::core {
namespace {

using ::testing::HasSubstr;

// The config.json Hugging Face ships with roberta-base, verbatim in content.
constexpr char kRobertaBaseJson[] = R"({
  "architectures": ["RobertaForMaskedLM"],
  "attention_probs_dropout_prob": 0.1,
  "bos_token_id": 0,
  "eos_token_id": 2,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 768,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "layer_norm_eps": 1e-05,
  "max_position_embeddings": 514,
  "model_type": "roberta",
  "num_attention_heads": 12,
  "num_hidden_layers": 12,
  "pad_token_id": 1,
  "type_vocab_size": 1,
  "vocab_size": 50265
})";

// gpt2's config.json (the fields that matter; n_inner is null there).
constexpr char kGpt2Json[] = R"({
  "activation_function": "gelu_new",
  "architectures": ["GPT2LMHeadModel"],
  "attn_pdrop": 0.1,
  "bos_token_id": 50256,
  "embd_pdrop": 0.1,
  "eos_token_id": 50256,
  "initializer_range": 0.02,
  "layer_norm_epsilon": 1e-05,
  "model_type": "gpt2",
  "n_ctx": 1024,
  "n_embd": 768,
  "n_head": 12,
  "n_inner": null,
  "n_layer": 12,
  "n_positions": 1024,
  "resid_pdrop": 0.1,
  "vocab_size": 50257
})";

TEST(ModelConfigTest, ParsesHuggingFaceRobertaBase) {
  absl::StatusOr<ModelConfig> config =
      ParseModelConfigJson(kRobertaBaseJson, "config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, Architecture::kRoberta);
  EXPECT_EQ(config->vocab_size, 50265);
  EXPECT_EQ(config->hidden_size, 768);
  EXPECT_EQ(config->num_hidden_layers, 12);
  EXPECT_EQ(config->num_attention_heads, 12);
  EXPECT_EQ(config->intermediate_size, 3072);
  EXPECT_EQ(config->max_position_embeddings, 514);
  EXPECT_EQ(config->type_vocab_size, 1);
  EXPECT_EQ(config->pad_token_id, 1);
  EXPECT_DOUBLE_EQ(config->layer_norm_eps, 1e-5);
  EXPECT_EQ(config->hidden_act, "gelu");
  EXPECT_EQ(config->vocabulary, kRealRobertaVocabulary);
  EXPECT_EQ(LongestUsableSequence(*config), 512);
}

TEST(ModelConfigTest, ParsesHuggingFaceGpt2WithNullInnerSize) {
  absl::StatusOr<ModelConfig> config =
      ParseModelConfigJson(kGpt2Json, "config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, Architecture::kGpt2);
  EXPECT_EQ(config->hidden_size, 768);
  EXPECT_EQ(config->intermediate_size, 3072);  // null means 4 * n_embd.
  EXPECT_EQ(config->max_position_embeddings, 1024);
  EXPECT_EQ(config->hidden_act, "gelu_new");
  EXPECT_EQ(config->pad_token_id, -1);
  EXPECT_EQ(config->type_vocab_size, 0);
  EXPECT_EQ(LongestUsableSequence(*config), 1024);
}

TEST(ModelConfigTest, BuiltinsMatchHuggingFaceFiles) {
  for (const char* name : {"roberta-base", "gpt2"}) {
    absl::StatusOr<ModelConfig> builtin = BuiltinModelConfig(name);
    ASSERT_TRUE(builtin.ok()) << builtin.status();
    absl::StatusOr<ModelConfig> parsed = ParseModelConfigJson(
        std::string(name) == "gpt2" ? kGpt2Json : kRobertaBaseJson, name);
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(builtin->vocab_size, parsed->vocab_size) << name;
    EXPECT_EQ(builtin->hidden_size, parsed->hidden_size) << name;
    EXPECT_EQ(builtin->intermediate_size, parsed->intermediate_size) << name;
    EXPECT_EQ(builtin->max_position_embeddings, parsed->max_position_embeddings)
        << name;
    EXPECT_EQ(builtin->type_vocab_size, parsed->type_vocab_size) << name;
    EXPECT_EQ(builtin->pad_token_id, parsed->pad_token_id) << name;
    EXPECT_EQ(builtin->hidden_act, parsed->hidden_act) << name;
  }
}

TEST(ModelConfigTest, EveryBuiltinRoundTripsThroughJson) {
  for (const std::string& name : BuiltinModelNames()) {
    absl::StatusOr<ModelConfig> builtin = BuiltinModelConfig(name);
    ASSERT_TRUE(builtin.ok());
    absl::StatusOr<ModelConfig> again =
        ParseModelConfigJson(ModelConfigToJson(*builtin), name);
    ASSERT_TRUE(again.ok()) << name << ": " << again.status();
    EXPECT_EQ(again->name, name);
    EXPECT_EQ(again->architecture, builtin->architecture);
    EXPECT_EQ(again->vocab_size, builtin->vocab_size);
    EXPECT_EQ(again->hidden_size, builtin->hidden_size);
    EXPECT_EQ(again->num_hidden_layers, builtin->num_hidden_layers);
    EXPECT_EQ(again->num_attention_heads, builtin->num_attention_heads);
    EXPECT_EQ(again->intermediate_size, builtin->intermediate_size);
    EXPECT_EQ(again->max_position_embeddings, builtin->max_position_embeddings);
    EXPECT_EQ(again->type_vocab_size, builtin->type_vocab_size);
    EXPECT_EQ(again->pad_token_id, builtin->pad_token_id);
    EXPECT_EQ(again->vocabulary, builtin->vocabulary);
    EXPECT_EQ(again->hidden_act, builtin->hidden_act);
  }
}

TEST(ModelConfigTest, BuiltinNamesAndLongestSequences) {
  EXPECT_THAT(
      BuiltinModelNames(),
      ::testing::IsSupersetOf({"roberta-base", "roberta-large", "gpt2",
                               "gpt2-medium", "roberta-tiny", "gpt2-tiny"}));
  EXPECT_EQ(LongestUsableSequence(*BuiltinModelConfig("roberta-large")), 512);
  EXPECT_EQ(LongestUsableSequence(*BuiltinModelConfig("gpt2-medium")), 1024);
  EXPECT_EQ(LongestUsableSequence(*BuiltinModelConfig("roberta-tiny")), 128);
  EXPECT_EQ(BuiltinModelConfig("roberta-tiny")->vocabulary,
            kGpt2DerivedVocabulary);
  EXPECT_EQ(BuiltinModelConfig("roberta-tiny")->vocab_size, 50262);
}

TEST(ModelConfigTest, UnknownBuiltinListsKnownNames) {
  absl::StatusOr<ModelConfig> config = BuiltinModelConfig("roberta-bass");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(config.status().message(), HasSubstr("\"roberta-bass\""));
  EXPECT_THAT(config.status().message(), HasSubstr("roberta-base"));
}

struct BadConfigCase {
  const char* json;
  const char* message;
};

class BadConfigTest : public ::testing::TestWithParam<BadConfigCase> {};

TEST_P(BadConfigTest, IsRejectedWithFileKeyAndValue) {
  absl::StatusOr<ModelConfig> config =
      ParseModelConfigJson(GetParam().json, "ckpt/config.json");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("ckpt/config.json: "));
  EXPECT_THAT(config.status().message(), HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadConfigTest,
    ::testing::Values(
        BadConfigCase{"{not json", "not valid JSON"},
        BadConfigCase{"[1, 2]", "expected a JSON object"},
        BadConfigCase{R"({"model_type": "bert"})",
                      "model_type: expected \"roberta\" or \"gpt2\", got bert"},
        BadConfigCase{R"({"hidden_size": 8})",
                      "model_type: expected \"roberta\" or \"gpt2\", got "
                      "nothing"},
        BadConfigCase{R"({"model_type": "roberta", "vocab_size": 10})",
                      "hidden_size: required field is missing"},
        BadConfigCase{R"({"model_type": "gpt2", "n_embd": -3})",
                      "n_embd: expected a positive integer, got -3"},
        BadConfigCase{R"({"model_type": "gpt2", "n_embd": "wide"})",
                      "n_embd: expected an integer, got \"wide\""},
        BadConfigCase{R"({"model_type": "gpt2", "n_embd": 10, "n_head": 4})",
                      "hidden size 10 is not divisible by the number of "
                      "attention heads 4"},
        BadConfigCase{R"({"model_type": "gpt2", "resid_pdrop": 1.5})",
                      "resid_pdrop: expected a probability in [0, 1), got 1.5"},
        BadConfigCase{
            R"({"model_type": "gpt2", "activation_function": "relu"})",
            "activation_function: expected \"gelu\" or "
            "\"gelu_new\", got relu"},
        BadConfigCase{R"({"model_type": "roberta", "vocab_size": 100,
                          "hidden_size": 8, "num_hidden_layers": 1,
                          "num_attention_heads": 2, "intermediate_size": 16,
                          "max_position_embeddings": 2})",
                      "pad_token_id: expected 0 <= pad_token_id < "
                      "max_position_embeddings - 1 = 1, got 1"},
        BadConfigCase{R"({"model_type": "roberta",
                          "position_embedding_type": "relative_key"})",
                      "position_embedding_type: only \"absolute\" is "
                      "supported (the architecture would differ), got "
                      "\"relative_key\""},
        BadConfigCase{R"({"model_type": "gpt2", "scale_attn_weights": false})",
                      "scale_attn_weights: only true is supported"},
        BadConfigCase{R"({"model_type": "gpt2", "n_embd": 100000000})",
                      "n_embd: expected at most 65536, got 100000000"},
        BadConfigCase{R"({"model_type": "gpt2", "x": [[[[[[[[[[1]]]]]]]]]]})",
                      "JSON nests too deeply for a model config"},
        BadConfigCase{R"({"model_type": "roberta", "vocab_size": 100,
                          "hidden_size": 8, "num_hidden_layers": 1,
                          "num_attention_heads": 2, "intermediate_size": 16,
                          "max_position_embeddings": 20,
                          "lora_sweep_vocabulary": "mine"})",
                      "lora_sweep_vocabulary: expected \"roberta\" or "
                      "\"gpt2-derived\", got mine"}));

TEST(ModelConfigTest, LoadsFromDirectoryAndNamesItAfterTheFolder) {
  const std::string dir =
      std::string(std::getenv("TEST_TMPDIR")) + "/my-roberta";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config.json") << kRobertaBaseJson;
  absl::StatusOr<ModelConfig> config = LoadModelConfigFromDirectory(dir + "/");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name, "my-roberta");
  EXPECT_EQ(LoadModelConfigFromDirectory(dir + "/missing").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace lora::core
