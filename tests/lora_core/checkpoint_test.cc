// Hugging Face checkpoint folders and PEFT adapters: literal file formats,
// round trips with identical outputs, the fused c_attn export, merged
// export, load reports and errors.
#include <ATen/ATen.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "base/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lora_core/hf_checkpoint.h"
#include "lora_core/lora_linear.h"
#include "lora_core/model_config.h"
#include "lora_core/peft_adapter.h"
#include "lora_core/tensor_io.h"
#include "lora_core/torch_runtime.h"

namespace lora::core {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Json = nlohmann::json;

std::string TempDir(const std::string& name) {
  std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

ModelSpec Spec(HeadKind head, int64_t rank, std::vector<std::string> targets,
               double alpha = 16) {
  ModelSpec spec;
  spec.head = head;
  spec.lora.rank = rank;
  spec.lora.alpha = alpha;
  spec.lora.target_modules = std::move(targets);
  return spec;
}

std::shared_ptr<TaskModel> Build(const std::string& name, const ModelSpec& spec,
                                 uint64_t seed = 0) {
  at::manual_seed(seed);
  absl::StatusOr<std::shared_ptr<TaskModel>> model =
      TaskModel::Create(*BuiltinModelConfig(name), spec);
  EXPECT_TRUE(model.ok()) << model.status();
  return *model;
}

// Non-zero B (and a trained-looking head) so LoRA changes the outputs.
void Perturb(TaskModel& model, uint64_t seed) {
  at::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& [path, layer] : model.LoraLayers()) layer->lora_B.normal_(0, 0.3);
  for (auto& item : model.named_parameters()) {
    if (IsHeadParameter(item.key())) item.value().add_(0.1);
  }
}

at::Tensor Logits(TaskModel& model) {
  model.eval();
  at::manual_seed(99);
  at::Tensor ids = at::randint(3, 1000, {2, 10});
  at::Tensor mask = at::ones_like(ids);
  mask[1].narrow(0, 7, 3).zero_();
  return model.forward(ids, mask).logits;
}

// Saves the trained model's backbone the way a real base checkpoint looks:
// no task head, no pooler, no LoRA.
void SaveBareBase(const TaskModel& model, const std::string& directory) {
  std::filesystem::create_directories(directory);
  NamedTensors bare;
  for (const auto& [key, tensor] : HuggingFaceStateDict(model, false)) {
    if (!IsHeadParameter(key) && key.find(".pooler.") == std::string::npos) {
      bare[key] = tensor;
    }
  }
  ASSERT_TRUE(SaveSafetensors(directory + "/model.safetensors", bare).ok());
  ASSERT_TRUE(WriteFileAtomically(directory + "/config.json",
                                  ModelConfigToJson(model.config()))
                  .ok());
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override { SetTorchThreads(2); }
};

TEST_F(CheckpointTest, PeftSequenceClassificationAdapterHasPeftNames) {
  std::shared_ptr<TaskModel> model =
      Build("roberta-base",
            Spec(HeadKind::kRobertaClassification, 8, {"query", "value"}));
  const std::string dir = TempDir("peft_seq_cls");
  ASSERT_TRUE(ExportPeftAdapter(*model, dir).ok());

  Json config = Json::parse(*ReadFile(dir + "/adapter_config.json"));
  EXPECT_EQ(config["peft_type"], "LORA");
  EXPECT_EQ(config["task_type"], "SEQ_CLS");
  EXPECT_EQ(config["r"], 8);
  EXPECT_EQ(config["lora_alpha"], 16.0);
  EXPECT_EQ(config["lora_dropout"], 0.0);
  EXPECT_EQ(config["target_modules"], Json({"query", "value"}));
  EXPECT_EQ(config["bias"], "none");
  EXPECT_EQ(config["fan_in_fan_out"], false);
  EXPECT_EQ(config["use_rslora"], false);
  EXPECT_EQ(config["modules_to_save"], Json({"classifier"}));
  EXPECT_EQ(config["base_model_name_or_path"], "roberta-base");

  absl::StatusOr<NamedTensors> tensors =
      LoadSafetensors(dir + "/adapter_model.safetensors");
  ASSERT_TRUE(tensors.ok());
  EXPECT_EQ(tensors->size(), 12u * 2 * 2 + 4);
  for (int i = 0; i < 12; ++i) {
    for (const char* module : {"query", "value"}) {
      const std::string base = "base_model.model.roberta.encoder.layer." +
                               std::to_string(i) + ".attention.self." + module;
      ASSERT_TRUE(tensors->count(base + ".lora_A.weight")) << base;
      EXPECT_EQ(tensors->at(base + ".lora_A.weight").sizes(),
                (std::vector<int64_t>{8, 768}));
      EXPECT_EQ(tensors->at(base + ".lora_B.weight").sizes(),
                (std::vector<int64_t>{768, 8}));
    }
  }
  EXPECT_EQ(tensors->at("base_model.model.classifier.dense.weight").sizes(),
            (std::vector<int64_t>{768, 768}));
  EXPECT_EQ(tensors->at("base_model.model.classifier.dense.bias").sizes(),
            (std::vector<int64_t>{768}));
  EXPECT_EQ(tensors->at("base_model.model.classifier.out_proj.weight").sizes(),
            (std::vector<int64_t>{2, 768}));
  EXPECT_EQ(tensors->at("base_model.model.classifier.out_proj.bias").sizes(),
            (std::vector<int64_t>{2}));
}

TEST_F(CheckpointTest, PeftRoundTripGivesIdenticalOutputs) {
  std::shared_ptr<TaskModel> trained =
      Build("roberta-tiny",
            Spec(HeadKind::kRobertaClassification, 4, {"query", "value"}));
  Perturb(*trained, 1);
  const std::string dir = TempDir("peft_round_trip");
  ASSERT_TRUE(ExportPeftAdapter(*trained, dir).ok());
  // The base travels as a checkpoint without the head; the adapter brings
  // LoRA and the head (modules_to_save).
  SaveBareBase(*trained, dir + "/base");
  at::manual_seed(777);  // Another random head until the adapter arrives.
  absl::StatusOr<PretrainedModel> base = LoadPretrained(
      dir + "/base", Spec(HeadKind::kRobertaClassification, 0, {}));
  ASSERT_TRUE(base.ok()) << base.status();
  EXPECT_FALSE(at::allclose(Logits(*base->model), Logits(*trained)));
  absl::StatusOr<PeftAdapter> adapter = ReadPeftAdapter(dir);
  ASSERT_TRUE(adapter.ok()) << adapter.status();
  ASSERT_TRUE(ApplyPeftAdapter(*adapter, *base->model).ok());
  EXPECT_TRUE(at::equal(Logits(*base->model), Logits(*trained)));
  EXPECT_EQ(base->model->CountModuleParameters().trainable,
            trained->CountModuleParameters().trainable);
  EXPECT_EQ(base->model->spec().lora.rank, 4);
}

TEST_F(CheckpointTest, FusedQueryValueExportsAsRank2rCAttnAdapter) {
  std::shared_ptr<TaskModel> trained = Build(
      "gpt2-tiny",
      Spec(HeadKind::kGpt2LanguageModel, 2, {"query", "value"}, /*alpha=*/4));
  Perturb(*trained, 2);
  absl::StatusOr<PeftAdapter> adapter = MakePeftAdapter(*trained);
  ASSERT_TRUE(adapter.ok()) << adapter.status();
  EXPECT_EQ(adapter->config.task_type, "CAUSAL_LM");
  EXPECT_EQ(adapter->config.r, 4);
  EXPECT_EQ(adapter->config.lora_alpha, 8.0);
  EXPECT_THAT(adapter->config.target_modules, ElementsAre("c_attn"));
  EXPECT_TRUE(adapter->config.fan_in_fan_out);
  EXPECT_THAT(adapter->config.rank_pattern, IsEmpty());
  const at::Tensor& b = adapter->tensors.at(
      "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight");
  ASSERT_EQ(b.sizes(), (std::vector<int64_t>{96, 4}));
  // Block placement: q rows use columns 0-1, k rows are zero, v rows 2-3.
  EXPECT_EQ(b.narrow(0, 32, 32).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(b.narrow(0, 0, 32).narrow(1, 2, 2).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(b.narrow(0, 64, 32).narrow(1, 0, 2).abs().sum().item<double>(),
            0.0);
  EXPECT_GT(b.narrow(0, 0, 32).abs().sum().item<double>(), 0.0);

  std::shared_ptr<TaskModel> plain =
      Build("gpt2-tiny", Spec(HeadKind::kGpt2LanguageModel, 0, {}));
  ASSERT_TRUE(ApplyPeftAdapter(*adapter, *plain).ok());
  ASSERT_EQ(plain->LoraLayers().size(), 2u);
  EXPECT_EQ(plain->LoraLayers()[0].second->options.rank(), 4);
  EXPECT_TRUE(
      plain->LoraLayers()[0].second->options.enabled_segments().empty());
  const double max_error =
      (Logits(*plain) - Logits(*trained)).abs().max().item<double>();
  EXPECT_LE(max_error, 1e-5);
}

TEST_F(CheckpointTest, MixedRanksUseRankAndAlphaPatterns) {
  std::shared_ptr<TaskModel> trained =
      Build("gpt2-tiny", Spec(HeadKind::kGpt2LanguageModel, 2,
                              {"query", "value", "c_fc", "c_proj"}));
  Perturb(*trained, 3);
  absl::StatusOr<PeftAdapter> adapter = MakePeftAdapter(*trained);
  ASSERT_TRUE(adapter.ok());
  // c_fc and both c_proj are rank 2 (the default); c_attn is rank 4.
  EXPECT_EQ(adapter->config.r, 2);
  EXPECT_EQ(adapter->config.rank_pattern.at("transformer.h.0.attn.c_attn"), 4);
  EXPECT_EQ(adapter->config.alpha_pattern.at("transformer.h.1.attn.c_attn"),
            32.0);
  EXPECT_THAT(adapter->config.target_modules,
              ElementsAre("c_attn", "c_fc", "c_proj"));
  std::shared_ptr<TaskModel> plain =
      Build("gpt2-tiny", Spec(HeadKind::kGpt2LanguageModel, 0, {}));
  ASSERT_TRUE(ApplyPeftAdapter(*adapter, *plain).ok());
  EXPECT_LE((Logits(*plain) - Logits(*trained)).abs().max().item<double>(),
            1e-5);
}

TEST_F(CheckpointTest, SeedHeadGoesToOwnFileWithItsPooler) {
  std::shared_ptr<TaskModel> trained = Build(
      "roberta-tiny", Spec(HeadKind::kLinearOnPooler, 2, {"query", "value"}));
  Perturb(*trained, 4);
  const std::string dir = TempDir("seed_head");
  ASSERT_TRUE(ExportPeftAdapter(*trained, dir).ok());
  Json config = Json::parse(*ReadFile(dir + "/adapter_config.json"));
  EXPECT_EQ(config["task_type"], "FEATURE_EXTRACTION");
  EXPECT_TRUE(config["modules_to_save"].is_null());
  absl::StatusOr<NamedTensors> head =
      LoadSafetensors(dir + "/lora_sweep_head.safetensors");
  ASSERT_TRUE(head.ok()) << head.status();
  std::vector<std::string> keys;
  for (const auto& [key, tensor] : *head) keys.push_back(key);
  EXPECT_THAT(keys, ElementsAre("classifier.bias", "classifier.weight",
                                "roberta.pooler.dense.bias",
                                "roberta.pooler.dense.weight"));
  // PEFT loads FEATURE_EXTRACTION adapters onto the bare model: keys carry
  // no "roberta." prefix.
  absl::StatusOr<NamedTensors> tensors =
      LoadSafetensors(dir + "/adapter_model.safetensors");
  ASSERT_TRUE(tensors.ok());
  EXPECT_TRUE(tensors->count(
      "base_model.model.encoder.layer.0.attention.self.query.lora_A.weight"));
  for (const auto& [key, tensor] : *tensors) {
    EXPECT_EQ(key.find("base_model.model.roberta."), std::string::npos) << key;
  }
  // A base without pooler and head (as real roberta-base) and another seed:
  // only the head file can bring back the trained pooler and classifier.
  SaveBareBase(*trained, dir + "/base");
  at::manual_seed(12345);
  absl::StatusOr<PretrainedModel> base =
      LoadPretrained(dir + "/base", Spec(HeadKind::kLinearOnPooler, 0, {}));
  ASSERT_TRUE(base.ok());
  EXPECT_FALSE(at::allclose(Logits(*base->model), Logits(*trained)));
  ASSERT_TRUE(ApplyPeftAdapter(*ReadPeftAdapter(dir), *base->model).ok());
  EXPECT_TRUE(at::equal(Logits(*base->model), Logits(*trained)));
}

TEST_F(CheckpointTest, LoraOnThePoolerStaysOutOfTheHeadFile) {
  std::shared_ptr<TaskModel> trained = Build(
      "roberta-tiny", Spec(HeadKind::kLinearOnPooler, 2, {"query", "dense"}));
  Perturb(*trained, 8);
  absl::StatusOr<PeftAdapter> adapter = MakePeftAdapter(*trained);
  ASSERT_TRUE(adapter.ok());
  for (const auto& [key, tensor] : adapter->own_head) {
    EXPECT_EQ(key.find("lora_"), std::string::npos) << key;
  }
  EXPECT_TRUE(
      adapter->tensors.count("base_model.model.pooler.dense.lora_A.weight"));
  // Same seed: the same random base, which the adapter does not carry.
  std::shared_ptr<TaskModel> fresh =
      Build("roberta-tiny", Spec(HeadKind::kLinearOnPooler, 0, {}));
  ASSERT_TRUE(ApplyPeftAdapter(*adapter, *fresh).ok());
  EXPECT_LE((Logits(*fresh) - Logits(*trained)).abs().max().item<double>(),
            1e-6);
}

TEST_F(CheckpointTest, ApplyRejectsBadValuesBeforeChangingAnything) {
  std::shared_ptr<TaskModel> trained = Build(
      "roberta-tiny", Spec(HeadKind::kRobertaClassification, 2, {"query"}));
  absl::StatusOr<PeftAdapter> adapter = MakePeftAdapter(*trained);
  ASSERT_TRUE(adapter.ok());
  PeftAdapter empty_rank = *adapter;
  const std::string layer1 =
      "base_model.model.roberta.encoder.layer.1.attention.self.query";
  empty_rank.tensors[layer1 + ".lora_A.weight"] = at::zeros({0, 32});
  empty_rank.tensors[layer1 + ".lora_B.weight"] = at::zeros({32, 0});
  std::shared_ptr<TaskModel> fresh =
      Build("roberta-tiny", Spec(HeadKind::kRobertaClassification, 0, {}));
  EXPECT_THAT(std::string(ApplyPeftAdapter(empty_rank, *fresh).message()),
              HasSubstr("LoRA rank must be >= 1, got 0"));
  EXPECT_TRUE(fresh->LoraLayers().empty());
  EXPECT_THAT(
      std::string(ParsePeftAdapterConfig(
                      R"({"peft_type": "LORA", "r": 2, "lora_alpha": 4,
                          "lora_dropout": 1.5})",
                      "a.json")
                      .status()
                      .message()),
      HasSubstr("lora_dropout: expected a probability in [0, 1), got 1.5"));
  EXPECT_THAT(std::string(ParsePeftAdapterConfig(std::string(100000, '[') +
                                                     std::string(100000, ']'),
                                                 "deep.json")
                              .status()
                              .message()),
              HasSubstr("deep.json: JSON nests too deeply"));
}

TEST_F(CheckpointTest, ClonedMergedLayerIsNotMergedTwice) {
  at::manual_seed(9);
  LoraLinear layer(LoraLinearOptions(8, 8).rank(2).alpha(4));
  {
    torch::NoGradGuard no_grad;
    layer->lora_B.normal_(0, 0.5);
  }
  layer->eval();
  at::Tensor x = at::randn({3, 8});
  at::Tensor expected = layer->forward(x);
  layer->merge();
  auto copy = std::dynamic_pointer_cast<LoraLinearImpl>(layer->clone());
  ASSERT_NE(copy, nullptr);
  EXPECT_TRUE(copy->merged());
  copy->eval();
  EXPECT_TRUE(at::allclose(copy->forward(x), expected, 1e-5, 1e-6));
  copy->unmerge();
  EXPECT_TRUE(at::allclose(copy->forward(x), expected, 1e-5, 1e-6));
}

TEST_F(CheckpointTest, MergedExportEqualsAdaptedModel) {
  std::shared_ptr<TaskModel> trained = Build(
      "roberta-tiny",
      Spec(HeadKind::kRobertaClassification, 4, {"query", "value", "dense"}));
  Perturb(*trained, 5);
  const std::string dir = TempDir("merged");
  ASSERT_TRUE(SavePretrained(*trained, dir, /*merge_lora=*/true).ok());
  absl::StatusOr<NamedTensors> weights =
      LoadSafetensors(dir + "/model.safetensors");
  for (const auto& [key, tensor] : *weights) {
    EXPECT_THAT(key, ::testing::Not(HasSubstr("lora_"))) << key;
  }
  Json config = Json::parse(*ReadFile(dir + "/config.json"));
  EXPECT_EQ(config["architectures"],
            Json({"RobertaForSequenceClassification"}));
  EXPECT_EQ(config["id2label"]["1"], "LABEL_1");
  absl::StatusOr<PretrainedModel> merged =
      LoadPretrained(dir, Spec(HeadKind::kRobertaClassification, 0, {}));
  ASSERT_TRUE(merged.ok());
  EXPECT_THAT(merged->report.missing_keys, IsEmpty());
  EXPECT_LE(
      (Logits(*merged->model) - Logits(*trained)).abs().max().item<double>(),
      1e-5);
  // Saving did not merge the model itself.
  EXPECT_FALSE(trained->LoraLayers()[0].second->merged());
}

TEST_F(CheckpointTest, BareGpt2CheckpointWithBuffersLoadsLikeHuggingFace) {
  std::shared_ptr<TaskModel> source =
      Build("gpt2-tiny", Spec(HeadKind::kGpt2LanguageModel, 0, {}), 6);
  NamedTensors state;
  for (const auto& item : source->named_parameters()) {
    // Real gpt2 files: no "transformer." prefix, plus mask buffers.
    state[item.key().substr(std::string("transformer.").size())] =
        item.value().detach().clone();
  }
  state["h.0.attn.bias"] = at::ones({1, 1, 128, 128});
  state["h.1.attn.masked_bias"] = at::tensor(-1e4);
  state["lm_head.weight"] = state["wte.weight"];
  std::shared_ptr<TaskModel> target =
      Build("gpt2-tiny", Spec(HeadKind::kGpt2LanguageModel, 0, {}), 7);
  absl::StatusOr<LoadReport> report = LoadStateDict(*target, state, "gpt2");
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_THAT(report->missing_keys, IsEmpty());
  EXPECT_THAT(report->unexpected_keys, IsEmpty());
  EXPECT_THAT(
      report->ignored_keys,
      ElementsAre("h.0.attn.bias", "h.1.attn.masked_bias", "lm_head.weight"));
  EXPECT_TRUE(at::equal(Logits(*target), Logits(*source)));
}

TEST_F(CheckpointTest, MissingPoolerIsReportedAsRandomlyInitialised) {
  std::shared_ptr<TaskModel> mlm =
      Build("roberta-tiny", Spec(HeadKind::kRobertaMaskedLm, 0, {}));
  const std::string dir = TempDir("mlm");
  ASSERT_TRUE(SavePretrained(*mlm, dir, false).ok());
  absl::StatusOr<PretrainedModel> loaded = LoadPretrained(
      dir, Spec(HeadKind::kLinearOnPooler, 4, {"query", "value"}));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_THAT(
      loaded->report.missing_keys,
      ElementsAre("roberta.pooler.dense.weight", "roberta.pooler.dense.bias",
                  "classifier.weight", "classifier.bias"));
  EXPECT_THAT(loaded->report.unexpected_keys, Contains("lm_head.dense.weight"));
  EXPECT_THAT(loaded->report.ToString(),
              HasSubstr("the pooler is initialised N(0, initializer_range) "
                        "from the seeded generator"));
}

TEST_F(CheckpointTest, ShapeMismatchNamesKeyAndBothShapes) {
  std::shared_ptr<TaskModel> small =
      Build("roberta-tiny", Spec(HeadKind::kNone, 0, {}));
  NamedTensors state;
  for (const auto& item : small->named_parameters()) {
    state[item.key()] = item.value().detach().clone();
  }
  state["roberta.encoder.layer.0.attention.self.query.weight"] =
      at::zeros({16, 32});
  std::shared_ptr<TaskModel> target =
      Build("roberta-tiny", Spec(HeadKind::kNone, 0, {}), 3);
  at::Tensor before =
      target->named_parameters()["roberta.embeddings.word_embeddings.weight"]
          .clone();
  absl::StatusOr<LoadReport> report = LoadStateDict(*target, state, "ckpt");
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.status().message(),
              HasSubstr("ckpt: size mismatch for "
                        "roberta.encoder.layer.0.attention.self.query.weight: "
                        "the checkpoint has shape [16, 32], the model "
                        "(roberta-tiny) expects [32, 32]"));
  // Nothing was copied.
  EXPECT_TRUE(at::equal(
      target->named_parameters()["roberta.embeddings.word_embeddings.weight"],
      before));
}

TEST_F(CheckpointTest, AdapterConfigErrorsNameTheField) {
  EXPECT_THAT(
      ParsePeftAdapterConfig(R"({"peft_type": "IA3", "r": 4})", "a.json")
          .status()
          .message(),
      HasSubstr("a.json: peft_type: expected \"LORA\", got \"IA3\""));
  EXPECT_THAT(
      ParsePeftAdapterConfig(R"({"peft_type": "LORA", "r": 0})", "a.json")
          .status()
          .message(),
      HasSubstr("r: expected an integer >= 1, got 0"));
  EXPECT_THAT(ParsePeftAdapterConfig("nope", "a.json").status().message(),
              HasSubstr("a.json: not a JSON object"));
}

TEST_F(CheckpointTest, ApplyRejectsAdaptersThatDoNotFit) {
  std::shared_ptr<TaskModel> trained = Build(
      "roberta-tiny", Spec(HeadKind::kRobertaClassification, 2, {"query"}));
  absl::StatusOr<PeftAdapter> adapter = MakePeftAdapter(*trained);
  ASSERT_TRUE(adapter.ok());
  std::shared_ptr<TaskModel> gpt2 =
      Build("gpt2-tiny", Spec(HeadKind::kGpt2LanguageModel, 0, {}));
  EXPECT_THAT(std::string(ApplyPeftAdapter(*adapter, *gpt2).message()),
              HasSubstr("adapter for roberta-tiny: \"base_model.model."
                        "classifier.dense.bias\": the model has no "
                        "parameter"));
  EXPECT_TRUE(gpt2->LoraLayers().empty());
  absl::StatusOr<PeftAdapter> gpt2_adapter = MakePeftAdapter(
      *Build("gpt2-tiny", Spec(HeadKind::kGpt2LanguageModel, 2, {"c_fc"})));
  std::shared_ptr<TaskModel> roberta =
      Build("roberta-tiny", Spec(HeadKind::kRobertaClassification, 0, {}));
  EXPECT_THAT(std::string(ApplyPeftAdapter(*gpt2_adapter, *roberta).message()),
              HasSubstr("\"base_model.model.transformer.h.0.mlp.c_fc.lora_A."
                        "weight\": the model has no linear layer "
                        "\"transformer.h.0.mlp.c_fc\""));
  EXPECT_TRUE(roberta->LoraLayers().empty());
  EXPECT_EQ(ApplyPeftAdapter(*adapter, *trained).code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace lora::core
