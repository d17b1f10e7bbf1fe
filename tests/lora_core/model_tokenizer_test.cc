#include "lora_core/model_tokenizer.h"

#include <cstdlib>
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lora_core/assets.h"

namespace lora::core {
namespace {

using ::testing::HasSubstr;

TEST(ModelTokenizerTest, OfflineConfigsGetTheirVocabulary) {
  absl::StatusOr<std::unique_ptr<BpeTokenizer>> roberta =
      LoadTokenizerForModel(*BuiltinModelConfig("roberta-tiny"));
  ASSERT_TRUE(roberta.ok()) << roberta.status();
  EXPECT_EQ((*roberta)->vocabulary(), "gpt2-derived");
  absl::StatusOr<std::unique_ptr<BpeTokenizer>> gpt2 =
      LoadTokenizerForModel(*BuiltinModelConfig("gpt2"));
  ASSERT_TRUE(gpt2.ok()) << gpt2.status();
  EXPECT_EQ((*gpt2)->vocabulary(), "gpt2");
}

TEST(ModelTokenizerTest, RealRobertaWeightsRefuseTheDerivedVocabulary) {
  const ModelConfig roberta_base = *BuiltinModelConfig("roberta-base");
  absl::StatusOr<std::unique_ptr<BpeTokenizer>> offline =
      LoadTokenizerForModel(roberta_base);
  EXPECT_EQ(offline.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(offline.status().message()),
              HasSubstr("real roberta vocabulary, which cannot be derived "
                        "offline"));
  std::unique_ptr<BpeTokenizer> derived =
      *BpeTokenizer::LoadRobertaDerivedFromGpt2(*AssetPath("gpt2/encoder.json"),
                                                *AssetPath("gpt2/vocab.bpe"));
  absl::Status mismatch = CheckTokenizerMatchesModel(*derived, roberta_base);
  EXPECT_EQ(mismatch.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(mismatch.message()),
              HasSubstr("tokenizer vocabulary \"gpt2-derived\" does not match "
                        "model roberta-base"));
  std::unique_ptr<BpeTokenizer> gpt2 = *BpeTokenizer::LoadGpt2(
      *AssetPath("gpt2/encoder.json"), *AssetPath("gpt2/vocab.bpe"));
  EXPECT_FALSE(
      CheckTokenizerMatchesModel(*gpt2, *BuiltinModelConfig("roberta-tiny"))
          .ok());
  ModelConfig small = *BuiltinModelConfig("gpt2-tiny");
  small.vocab_size = 1000;
  EXPECT_THAT(std::string(CheckTokenizerMatchesModel(*gpt2, small).message()),
              HasSubstr("tokenizer has 50257 ids but model gpt2-tiny has only "
                        "1000 embeddings"));
}

TEST(ModelTokenizerTest, CheckpointFolderFilesWin) {
  const std::string dir =
      std::string(std::getenv("TEST_TMPDIR")) + "/checkpoint";
  std::filesystem::create_directories(dir);
  // The files a pretraining run writes beside its model.
  ASSERT_TRUE(
      (*BpeTokenizer::LoadRobertaDerivedFromGpt2(
           *AssetPath("gpt2/encoder.json"), *AssetPath("gpt2/vocab.bpe")))
          ->SaveVocabulary(dir)
          .ok());
  absl::StatusOr<std::unique_ptr<BpeTokenizer>> tokenizer =
      LoadTokenizerForModel(*BuiltinModelConfig("roberta-mini"), dir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->vocabulary(), "gpt2-derived");
  EXPECT_EQ((*tokenizer)->mask_id(), 50261);
  EXPECT_EQ((*tokenizer)->Encode("Hello world"),
            (std::vector<int64_t>{15500, 999}));
}

}  // namespace
}  // namespace lora::core
