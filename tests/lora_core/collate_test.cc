#include "lora_core/collate.h"

#include <ATen/ATen.h>

#include <vector>

#include "gtest/gtest.h"

namespace lora::core {
namespace {

TEST(CollateTest, PadsToLongestAndBuildsMasksAndLabels) {
  std::vector<TokenizedExample> examples(3);
  examples[0].input_ids = {0, 10, 11, 2};
  examples[0].label = 1;
  examples[1].input_ids = {0, 12, 2};
  examples[1].label = 0;
  examples[2].input_ids = {0, 13, 14, 15, 16, 2};
  TensorBatch batch = Collate(examples, {1, 0}, /*pad_id=*/1);
  EXPECT_TRUE(at::equal(
      batch.input_ids,
      at::tensor({0, 12, 2, 1, 0, 10, 11, 2}, at::kLong).view({2, 4})));
  EXPECT_TRUE(
      at::equal(batch.attention_mask,
                at::tensor({1, 1, 1, 0, 1, 1, 1, 1}, at::kLong).view({2, 4})));
  EXPECT_TRUE(at::equal(batch.labels, at::tensor({0, 1}, at::kLong)));
  EXPECT_EQ(batch.tokens, 7);
}

TEST(CollateTest, LanguageModelLabelsSkipPromptAndPadding) {
  std::vector<TokenizedExample> examples(2);
  examples[0].input_ids = {5, 6, 7, 8, 9};
  examples[0].prompt_length = 2;  // 5 6 are context; predict 7, 8, 9.
  examples[1].input_ids = {5, 6, 7};
  TensorBatch batch = Collate(examples, {0, 1}, /*pad_id=*/50256);
  const int64_t x = kIgnoreIndex;
  const std::vector<int64_t> expected = {x, 7, 8, 9, x, 6, 7, x, x, x};
  EXPECT_TRUE(
      at::equal(batch.lm_labels, at::tensor(expected, at::kLong).view({2, 5})));
}

TEST(CollateTest, SliceRowsKeepsRowsAndTrimsPaddingTheyDoNotNeed) {
  std::vector<TokenizedExample> examples(3);
  examples[0].input_ids = {0, 10, 2};
  examples[0].label = 1;
  examples[1].input_ids = {0, 11, 12, 13, 14, 2};
  examples[1].label = 0;
  examples[2].input_ids = {0, 2};
  examples[2].label = 1;
  TensorBatch batch = Collate(examples, {0, 1, 2}, /*pad_id=*/1);
  batch.mlm_labels = at::full_like(batch.input_ids, kIgnoreIndex);
  batch.mlm_labels.index_put_({2, 1}, 7);

  // Row 2 needs 2 of the 6 columns.
  TensorBatch edges = SliceRows(batch, 2, 3);
  EXPECT_TRUE(
      at::equal(edges.input_ids, at::tensor({0, 2}, at::kLong).view({1, 2})));
  EXPECT_TRUE(
      at::equal(edges.labels, at::tensor(std::vector<int64_t>{1}, at::kLong)));
  EXPECT_TRUE(
      at::equal(edges.mlm_labels,
                at::tensor(std::vector<int64_t>{kIgnoreIndex, 7}, at::kLong)
                    .view({1, 2})));
  EXPECT_EQ(edges.tokens, 2);

  TensorBatch first_two = SliceRows(batch, 0, 2);
  EXPECT_TRUE(at::equal(first_two.input_ids, batch.input_ids.slice(0, 0, 2)));
  EXPECT_TRUE(at::equal(first_two.lm_labels, batch.lm_labels.slice(0, 0, 2)));
  EXPECT_TRUE(at::equal(first_two.labels, at::tensor({1, 0}, at::kLong)));
  EXPECT_EQ(first_two.tokens, 9);
  EXPECT_ANY_THROW(SliceRows(batch, 2, 2));
}

}  // namespace
}  // namespace lora::core
