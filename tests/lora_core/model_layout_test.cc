// Pins the parameter figures the product must reproduce, from the analytic
// counts (tests/lora_core/model_parameters_test.cc checks the same figures
// against the LibTorch modules).
#include "lora_core/model_layout.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lora::core {
namespace {

using ::testing::HasSubstr;

ModelConfig Config(const char* name) { return *BuiltinModelConfig(name); }

ModelSpec SeedSpec(int64_t rank) {
  ModelSpec spec;
  spec.head = HeadKind::kLinearOnPooler;
  spec.num_labels = 2;
  spec.lora = LoraSpec{rank, {"query", "value"}};
  return spec;
}

TEST(ParameterCountTest, RobertaBaseWithPoolerIsExact) {
  ModelSpec bare;
  absl::StatusOr<ParameterCounts> counts =
      CountParameters(Config("roberta-base"), bare);
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->base, 124'645'632);
  EXPECT_EQ(counts->total, 124'645'632);
}

TEST(ParameterCountTest, SeedRankAblationFiguresAreExact) {
  const int64_t ranks[] = {1, 2, 4, 8};
  const int64_t lora[] = {36'864, 73'728, 147'456, 294'912};
  const int64_t trainable[] = {38'402, 75'266, 148'994, 296'450};
  const char* percent[] = {"0.031", "0.060", "0.119", "0.237"};
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<ParameterCounts> counts =
        CountParameters(Config("roberta-base"), SeedSpec(ranks[i]));
    ASSERT_TRUE(counts.ok()) << counts.status();
    EXPECT_EQ(counts->lora, lora[i]) << "r=" << ranks[i];
    EXPECT_EQ(counts->lora, 36'864 * ranks[i]);
    EXPECT_EQ(counts->head, 1'538);
    EXPECT_EQ(counts->trainable, trainable[i]) << "r=" << ranks[i];
    // The seed's "% of total": trainable over base + LoRA + head.
    char formatted[16];
    std::snprintf(formatted, sizeof(formatted), "%.3f",
                  100.0 * counts->trainable / counts->total);
    EXPECT_STREQ(formatted, percent[i]) << "r=" << ranks[i];
  }
  absl::StatusOr<ParameterCounts> r4 =
      CountParameters(Config("roberta-base"), SeedSpec(4));
  // The seed's "Total Params": base plus LoRA, head left out.
  EXPECT_EQ(r4->base + r4->lora, 124'793'088);
}

TEST(ParameterCountTest, HuggingFaceClassificationHeadAtRank8MatchesPeft) {
  ModelSpec spec = SeedSpec(8);
  spec.head = HeadKind::kRobertaClassification;
  absl::StatusOr<ParameterCounts> counts =
      CountParameters(Config("roberta-base"), spec);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->head, 592'130);
  EXPECT_EQ(counts->trainable, 887'042);
  EXPECT_EQ(counts->base, 124'645'632 - 590'592);  // No pooler.
}

TEST(ParameterCountTest, Gpt2SmallIsExact) {
  ModelSpec lm;
  lm.head = HeadKind::kGpt2LanguageModel;
  absl::StatusOr<ParameterCounts> counts = CountParameters(Config("gpt2"), lm);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->total, 124'439'808);  // lm_head tied to wte.
  EXPECT_EQ(counts->head, 0);
}

TEST(ParameterCountTest, Gpt2FusedQueryValueEqualsTwoSeparateAdapters) {
  ModelSpec spec;
  spec.head = HeadKind::kGpt2LanguageModel;
  spec.lora = LoraSpec{4, {"query", "value"}};
  absl::StatusOr<ParameterCounts> qv = CountParameters(Config("gpt2"), spec);
  ASSERT_TRUE(qv.ok()) << qv.status();
  // Per layer: A_q, A_v (r x 768) and B_q, B_v (768 x r).
  EXPECT_EQ(qv->lora, 12 * 4 * 4 * 768);
  EXPECT_EQ(qv->trainable, qv->lora);
  spec.lora.target_modules = {"c_attn"};
  absl::StatusOr<ParameterCounts> whole = CountParameters(Config("gpt2"), spec);
  EXPECT_EQ(whole->lora, 12 * 4 * (768 + 2304));
}

TEST(ParameterCountTest, TrainableSetsAndBiasModes) {
  ModelSpec spec = SeedSpec(4);
  spec.trainable = TrainableSet::kHeadOnly;
  EXPECT_EQ(CountParameters(Config("roberta-base"), spec)->trainable, 1'538);
  spec.trainable = TrainableSet::kFull;
  absl::StatusOr<ParameterCounts> full =
      CountParameters(Config("roberta-base"), spec);
  EXPECT_EQ(full->trainable, full->total);
  spec.trainable = TrainableSet::kLora;
  spec.bias = "lora_only";
  EXPECT_EQ(CountParameters(Config("roberta-base"), spec)->trainable,
            148'994 + 24 * 768);
  spec.bias = "all";
  // Linear biases: 12 x (4*768 + 3072 + 768) + pooler 768; LayerNorm
  // biases: (2 x 12 + 1) x 768.
  EXPECT_EQ(CountParameters(Config("roberta-base"), spec)->trainable,
            148'994 + 12 * (4 * 768 + 3072 + 768) + 768 + 25 * 768);
  spec.bias = "some";
  EXPECT_THAT(CountParameters(Config("roberta-base"), spec).status().message(),
              HasSubstr("lora.bias: expected none, all or lora_only"));
}

TEST(LoraPlacementTest, MatchesPeftSuffixRules) {
  absl::StatusOr<std::vector<LoraPlacement>> placements =
      PlaceLora(Config("roberta-base"), HeadKind::kRobertaClassification,
                LoraSpec{8, {"query", "attention.output.dense"}});
  ASSERT_TRUE(placements.ok()) << placements.status();
  ASSERT_EQ(placements->size(), 24u);
  EXPECT_EQ((*placements)[0].layer.path,
            "roberta.encoder.layer.0.attention.self.query");
  EXPECT_EQ((*placements)[1].layer.path,
            "roberta.encoder.layer.0.attention.output.dense");
}

TEST(LoraPlacementTest, DenseMatchesEveryBackboneDenseButNeverTheHead) {
  absl::StatusOr<std::vector<LoraPlacement>> placements =
      PlaceLora(Config("roberta-tiny"), HeadKind::kRobertaClassification,
                LoraSpec{2, {"dense"}});
  ASSERT_TRUE(placements.ok());
  // attention.output.dense, intermediate.dense, output.dense per layer.
  EXPECT_EQ(placements->size(), 3u * 2);
  for (const LoraPlacement& placement : *placements) {
    EXPECT_EQ(placement.layer.path.find("classifier"), std::string::npos);
  }
}

TEST(LoraPlacementTest, Gpt2QueryValueSelectSegmentsOfFusedAttention) {
  absl::StatusOr<std::vector<LoraPlacement>> placements =
      PlaceLora(Config("gpt2-tiny"), HeadKind::kGpt2LanguageModel,
                LoraSpec{2, {"query", "value"}});
  ASSERT_TRUE(placements.ok());
  ASSERT_EQ(placements->size(), 2u);
  EXPECT_EQ((*placements)[0].layer.path, "transformer.h.0.attn.c_attn");
  EXPECT_THAT((*placements)[0].enabled_segments,
              ::testing::ElementsAre(true, false, true));
  EXPECT_TRUE((*placements)[0].layer.fan_in_fan_out);
}

TEST(LoraPlacementTest, RejectsTargetsThatMatchNothing) {
  absl::StatusOr<std::vector<LoraPlacement>> placements =
      PlaceLora(Config("roberta-base"), HeadKind::kLinearOnPooler,
                LoraSpec{4, {"query", "qeury"}});
  ASSERT_FALSE(placements.ok());
  EXPECT_THAT(placements.status().message(),
              HasSubstr("lora.target_modules: \"qeury\" matches no linear "
                        "layer of roberta-base; its layers are "));
  EXPECT_THAT(placements.status().message(), HasSubstr("attention.self.query"));
}

TEST(LoraPlacementTest, RejectsWholeAndPartialFusedAttentionTogether) {
  absl::StatusOr<std::vector<LoraPlacement>> placements =
      PlaceLora(Config("gpt2"), HeadKind::kGpt2LanguageModel,
                LoraSpec{4, {"c_attn", "query"}});
  EXPECT_THAT(placements.status().message(),
              HasSubstr("cannot be combined with \"query\""));
}

TEST(LoraPlacementTest, RankZeroPlacesNothingAndNegativeRankFails) {
  EXPECT_TRUE(
      PlaceLora(Config("gpt2"), HeadKind::kNone, LoraSpec{0, {}})->empty());
  EXPECT_THAT(PlaceLora(Config("gpt2"), HeadKind::kNone, LoraSpec{-1, {"c_fc"}})
                  .status()
                  .message(),
              HasSubstr("lora.rank must be >= 1, got -1"));
  EXPECT_THAT(PlaceLora(Config("gpt2"), HeadKind::kNone, LoraSpec{4, {}})
                  .status()
                  .message(),
              HasSubstr("at least one target module"));
}

TEST(HeadKindTest, NamesRoundTripAndFitArchitectures) {
  for (HeadKind head :
       {HeadKind::kNone, HeadKind::kLinearOnPooler,
        HeadKind::kRobertaClassification, HeadKind::kRobertaMaskedLm,
        HeadKind::kGpt2LanguageModel}) {
    EXPECT_EQ(*ParseHeadKind(HeadKindName(head)), head);
  }
  EXPECT_FALSE(ParseHeadKind("pooler").ok());
  EXPECT_FALSE(HeadFitsArchitecture(HeadKind::kGpt2LanguageModel,
                                    Architecture::kRoberta));
  EXPECT_FALSE(
      HeadFitsArchitecture(HeadKind::kLinearOnPooler, Architecture::kGpt2));
  ModelSpec spec;
  spec.head = HeadKind::kRobertaMaskedLm;
  EXPECT_THAT(CountParameters(Config("gpt2"), spec).status().message(),
              HasSubstr("head \"mlm\" does not fit a gpt2 model"));
}

}  // namespace
}  // namespace lora::core
