// The LibTorch models: parameter names and counts (against the analytic
// counts of model_layout and the seed's figures), LoRA behaviour at
// initialisation, gradients, merging, and architecture details.
#include "lora_core/task_model.h"

#include <ATen/ATen.h>

#include <set>
#include <string>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lora_core/torch_runtime.h"

namespace lora::core {
namespace {

using ::testing::HasSubstr;

ModelConfig Config(const std::string& name) {
  return *BuiltinModelConfig(name);
}

std::shared_ptr<TaskModel> Build(const ModelConfig& config,
                                 const ModelSpec& spec, uint64_t seed = 0) {
  at::manual_seed(seed);
  absl::StatusOr<std::shared_ptr<TaskModel>> model =
      TaskModel::Create(config, spec);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

ModelSpec Spec(HeadKind head, int64_t rank,
               std::vector<std::string> targets = {"query", "value"}) {
  ModelSpec spec;
  spec.head = head;
  spec.lora.rank = rank;
  spec.lora.alpha = 16;
  if (rank > 0) spec.lora.target_modules = std::move(targets);
  return spec;
}

void ExpectSameCounts(const ParameterCounts& modules,
                      const ParameterCounts& analytic,
                      const std::string& context) {
  EXPECT_EQ(modules.base, analytic.base) << context;
  EXPECT_EQ(modules.lora, analytic.lora) << context;
  EXPECT_EQ(modules.head, analytic.head) << context;
  EXPECT_EQ(modules.total, analytic.total) << context;
  EXPECT_EQ(modules.trainable, analytic.trainable) << context;
}

class TaskModelTest : public ::testing::Test {
 protected:
  void SetUp() override { SetTorchThreads(2); }
};

TEST_F(TaskModelTest, ModuleCountsEqualAnalyticCountsForEveryBuiltinConfig) {
  for (const std::string& name : BuiltinModelNames()) {
    const ModelConfig config = Config(name);
    std::vector<ModelSpec> specs;
    if (config.architecture == Architecture::kRoberta) {
      specs = {Spec(HeadKind::kLinearOnPooler, 4),
               Spec(HeadKind::kRobertaClassification, 8,
                    {"query", "key", "value", "attention.output.dense",
                     "intermediate.dense", "output.dense"}),
               Spec(HeadKind::kRobertaMaskedLm, 0), Spec(HeadKind::kNone, 0)};
      specs[3].trainable = TrainableSet::kFull;
      specs[1].bias = "all";
    } else {
      specs = {Spec(HeadKind::kGpt2LanguageModel, 4),
               Spec(HeadKind::kGpt2LanguageModel, 2, {"c_attn", "c_proj"}),
               Spec(HeadKind::kNone, 0)};
      specs[1].bias = "lora_only";
    }
    for (const ModelSpec& spec : specs) {
      const std::string context = name + " head=" + HeadKindName(spec.head) +
                                  " r=" + std::to_string(spec.lora.rank) +
                                  " bias=" + spec.bias;
      std::shared_ptr<TaskModel> model = Build(config, spec);
      ASSERT_NE(model, nullptr) << context;
      ExpectSameCounts(model->CountModuleParameters(),
                       *CountParameters(config, spec), context);
    }
  }
}

TEST_F(TaskModelTest, SeedFiguresComeOutOfTheModules) {
  const int64_t ranks[] = {1, 2, 4, 8};
  const int64_t trainable[] = {38'402, 75'266, 148'994, 296'450};
  // The seed's "% of total": trainable over base + LoRA + head.
  const char* const kPercent[] = {"0.031", "0.060", "0.119", "0.237"};
  for (int i = 0; i < 4; ++i) {
    std::shared_ptr<TaskModel> model = Build(
        Config("roberta-base"), Spec(HeadKind::kLinearOnPooler, ranks[i]));
    ParameterCounts counts = model->CountModuleParameters();
    EXPECT_EQ(counts.base, 124'645'632);
    EXPECT_EQ(counts.lora, 36'864 * ranks[i]);
    EXPECT_EQ(counts.head, 1'538);
    EXPECT_EQ(counts.trainable, trainable[i]);
    char percent[16];
    std::snprintf(percent, sizeof(percent), "%.3f",
                  100.0 * counts.trainable / counts.total);
    EXPECT_STREQ(percent, kPercent[i]);
    if (ranks[i] == 4) EXPECT_EQ(counts.base + counts.lora, 124'793'088);
  }
  std::shared_ptr<TaskModel> gpt2 =
      Build(Config("gpt2"), Spec(HeadKind::kGpt2LanguageModel, 0));
  EXPECT_EQ(gpt2->CountModuleParameters().total, 124'439'808);
  std::shared_ptr<TaskModel> hf_head =
      Build(Config("roberta-base"), Spec(HeadKind::kRobertaClassification, 8));
  EXPECT_EQ(hf_head->CountModuleParameters().trainable, 887'042);
  EXPECT_EQ(hf_head->CountModuleParameters().head, 592'130);
}

TEST_F(TaskModelTest, ParameterNamesAreHuggingFaceKeys) {
  std::shared_ptr<TaskModel> roberta =
      Build(Config("roberta-tiny"), Spec(HeadKind::kRobertaClassification, 2));
  std::set<std::string> names;
  for (const auto& item : roberta->named_parameters()) names.insert(item.key());
  for (const char* key :
       {"roberta.embeddings.word_embeddings.weight",
        "roberta.embeddings.position_embeddings.weight",
        "roberta.embeddings.token_type_embeddings.weight",
        "roberta.embeddings.LayerNorm.weight",
        "roberta.encoder.layer.0.attention.self.query.weight",
        "roberta.encoder.layer.0.attention.self.query.lora_A",
        "roberta.encoder.layer.0.attention.self.value.lora_B",
        "roberta.encoder.layer.1.attention.self.key.bias",
        "roberta.encoder.layer.1.attention.output.dense.weight",
        "roberta.encoder.layer.1.attention.output.LayerNorm.bias",
        "roberta.encoder.layer.1.intermediate.dense.weight",
        "roberta.encoder.layer.1.output.dense.bias",
        "roberta.encoder.layer.1.output.LayerNorm.weight",
        "classifier.dense.weight", "classifier.out_proj.bias"}) {
    EXPECT_TRUE(names.count(key)) << key;
  }
  EXPECT_FALSE(names.count("roberta.pooler.dense.weight"));  // HF head: none.
  std::shared_ptr<TaskModel> gpt2 =
      Build(Config("gpt2-tiny"), Spec(HeadKind::kGpt2LanguageModel, 2));
  names.clear();
  for (const auto& item : gpt2->named_parameters()) names.insert(item.key());
  for (const char* key :
       {"transformer.wte.weight", "transformer.wpe.weight",
        "transformer.h.0.ln_1.weight", "transformer.h.0.attn.c_attn.weight",
        "transformer.h.0.attn.c_attn.lora_A",
        "transformer.h.0.attn.c_proj.bias", "transformer.h.1.ln_2.bias",
        "transformer.h.1.mlp.c_fc.weight", "transformer.h.1.mlp.c_proj.weight",
        "transformer.ln_f.bias"}) {
    EXPECT_TRUE(names.count(key)) << key;
  }
  EXPECT_EQ(
      gpt2->named_parameters()["transformer.h.0.attn.c_attn.weight"].sizes(),
      (std::vector<int64_t>{32, 96}));  // Conv1D: in x out.
}

TEST_F(TaskModelTest, LoraLeavesOutputUnchangedAtInitialisation) {
  for (const char* name : {"roberta-tiny", "gpt2-tiny"}) {
    const ModelConfig config = Config(name);
    const HeadKind head = config.architecture == Architecture::kRoberta
                              ? HeadKind::kLinearOnPooler
                              : HeadKind::kGpt2LanguageModel;
    std::shared_ptr<TaskModel> plain = Build(config, Spec(head, 0), 7);
    std::shared_ptr<TaskModel> adapted = Build(config, Spec(head, 4), 7);
    plain->eval();
    adapted->eval();
    at::Tensor ids = at::randint(5, 1000, {2, 9});
    at::Tensor mask = at::ones({2, 9}, at::kLong);
    EXPECT_TRUE(at::equal(plain->forward(ids, mask).logits,
                          adapted->forward(ids, mask).logits))
        << name;
  }
}

TEST_F(TaskModelTest, OnlyLoraAndHeadReceiveGradients) {
  std::shared_ptr<TaskModel> model =
      Build(Config("roberta-tiny"), Spec(HeadKind::kLinearOnPooler, 2));
  at::Tensor ids = at::randint(5, 1000, {2, 7});
  model->forward(ids, at::ones_like(ids)).logits.sum().backward();
  for (const auto& item : model->named_parameters()) {
    const bool should_train =
        absl::StrContains(item.key(), "lora_") || IsHeadParameter(item.key());
    EXPECT_EQ(item.value().requires_grad(), should_train) << item.key();
    EXPECT_EQ(item.value().grad().defined(), should_train) << item.key();
  }
  EXPECT_EQ(model->TrainableParameters().size(), 2u * 2 * 2 + 2);
}

TEST_F(TaskModelTest, MergedForwardEqualsUnmerged) {
  for (const char* name : {"roberta-tiny", "gpt2-tiny"}) {
    const ModelConfig config = Config(name);
    const HeadKind head = config.architecture == Architecture::kRoberta
                              ? HeadKind::kRobertaClassification
                              : HeadKind::kGpt2LanguageModel;
    std::shared_ptr<TaskModel> model = Build(config, Spec(head, 4));
    {
      torch::NoGradGuard no_grad;
      for (auto& [path, layer] : model->LoraLayers()) {
        layer->lora_B.normal_(0, 0.5);
      }
    }
    model->eval();
    at::Tensor ids = at::randint(5, 1000, {2, 11});
    at::Tensor mask = at::ones({2, 11}, at::kLong);
    at::Tensor unmerged = model->forward(ids, mask).logits;
    model->MergeLora();
    at::Tensor merged = model->forward(ids, mask).logits;
    EXPECT_TRUE(at::allclose(merged, unmerged, 1e-5, 1e-5)) << name;
    model->UnmergeLora();
    EXPECT_TRUE(
        at::allclose(model->forward(ids, mask).logits, unmerged, 1e-5, 1e-5))
        << name;
  }
}

TEST_F(TaskModelTest, RobertaPositionIdsSkipPadding) {
  at::Tensor ids = at::tensor({0, 5, 6, 2, 1, 1}, at::kLong).unsqueeze(0);
  at::Tensor positions = RobertaPositionIds(ids, /*pad_token_id=*/1);
  EXPECT_TRUE(at::equal(
      positions, at::tensor({2, 3, 4, 5, 1, 1}, at::kLong).unsqueeze(0)));
}

TEST_F(TaskModelTest, PaddingDoesNotChangeRealTokens) {
  std::shared_ptr<TaskModel> model =
      Build(Config("roberta-tiny"), Spec(HeadKind::kRobertaClassification, 0));
  model->eval();
  at::Tensor short_ids = at::tensor({0, 11, 12, 13, 2}, at::kLong).unsqueeze(0);
  at::Tensor padded_ids =
      at::tensor({0, 11, 12, 13, 2, 1, 1, 1}, at::kLong).unsqueeze(0);
  at::Tensor padded_mask =
      at::tensor({1, 1, 1, 1, 1, 0, 0, 0}, at::kLong).unsqueeze(0);
  at::Tensor alone = model->forward(short_ids, at::ones_like(short_ids)).logits;
  at::Tensor padded = model->forward(padded_ids, padded_mask).logits;
  EXPECT_TRUE(at::allclose(alone, padded, 1e-5, 1e-6));
}

TEST_F(TaskModelTest, Gpt2IsCausal) {
  std::shared_ptr<TaskModel> model =
      Build(Config("gpt2-tiny"), Spec(HeadKind::kGpt2LanguageModel, 0));
  model->eval();
  at::Tensor ids = at::randint(0, 50257, {1, 8});
  at::Tensor changed = ids.clone();
  changed[0][6] = (ids[0][6].item<int64_t>() + 1) % 50257;
  at::Tensor mask = at::ones_like(ids);
  at::Tensor a = model->forward(ids, mask).logits;
  at::Tensor b = model->forward(changed, mask).logits;
  EXPECT_TRUE(at::equal(a.narrow(1, 0, 6), b.narrow(1, 0, 6)));
  EXPECT_FALSE(at::allclose(a.narrow(1, 6, 2), b.narrow(1, 6, 2)));
}

TEST_F(TaskModelTest, HeadOnlyAndFullTrainableSets) {
  ModelSpec spec = Spec(HeadKind::kLinearOnPooler, 0);
  spec.trainable = TrainableSet::kHeadOnly;
  std::shared_ptr<TaskModel> model = Build(Config("roberta-tiny"), spec);
  EXPECT_EQ(model->CountModuleParameters().trainable,
            CountParameters(Config("roberta-tiny"), spec)->head);
  model->SetTrainable(TrainableSet::kFull);
  EXPECT_EQ(model->CountModuleParameters().trainable,
            model->CountModuleParameters().total);
}

TEST_F(TaskModelTest, CreateRejectsBadSpecsWithoutBuilding) {
  ModelSpec spec = Spec(HeadKind::kLinearOnPooler, 4, {"c_attn"});
  absl::StatusOr<std::shared_ptr<TaskModel>> model =
      TaskModel::Create(Config("roberta-tiny"), spec);
  EXPECT_THAT(model.status().message(),
              HasSubstr("\"c_attn\" matches no linear layer"));
  spec = Spec(HeadKind::kGpt2LanguageModel, 0);
  EXPECT_FALSE(TaskModel::Create(Config("roberta-tiny"), spec).ok());
}

}  // namespace
}  // namespace lora::core
