#include "lora_core/generation.h"

#include <ATen/ATen.h>

#include <cmath>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lora_core/torch_runtime.h"

namespace lora::core {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

TEST(BannedNgramTest, BlocksTokensThatWouldRepeatAnNgram) {
  // "a b c a b" with n = 3: "a b" was followed by c, so c is banned.
  EXPECT_THAT(BannedNgramTokens({1, 2, 3, 1, 2}, 3), ElementsAre(3));
  // n = 2: after "2", earlier "2 3" bans 3.
  EXPECT_THAT(BannedNgramTokens({1, 2, 3, 1, 2}, 2), ElementsAre(3));
  EXPECT_THAT(BannedNgramTokens({5, 5, 5}, 2), UnorderedElementsAre(5, 5));
  EXPECT_THAT(BannedNgramTokens({1, 2, 3}, 0), IsEmpty());
  EXPECT_THAT(BannedNgramTokens({1}, 3), IsEmpty());
}

class GenerationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetTorchThreads(2);
    at::manual_seed(4);
    ModelSpec spec;
    spec.head = HeadKind::kGpt2LanguageModel;
    model_ = *TaskModel::Create(*BuiltinModelConfig("gpt2-tiny"), spec);
    model_->eval();
  }

  // Log probability of `generated` after `prompt`, by plain forward passes.
  double LogProbability(const std::vector<int64_t>& prompt,
                        const std::vector<int64_t>& generated) {
    at::NoGradGuard no_grad;
    std::vector<int64_t> sequence = prompt;
    double total = 0;
    for (int64_t token : generated) {
      at::Tensor ids = at::tensor(sequence, at::kLong).unsqueeze(0);
      at::Tensor logits = model_->forward(ids, at::ones_like(ids)).logits;
      total += at::log_softmax(logits[0][-1], -1)[token].item<double>();
      sequence.push_back(token);
    }
    return total;
  }

  std::shared_ptr<TaskModel> model_;
  const std::vector<int64_t> prompt_ = {464, 3290, 318};
};

TEST_F(GenerationTest, GreedyTakesTheArgmaxEachStep) {
  GenerationOptions options;
  options.beam_size = 1;
  options.no_repeat_ngram_size = 0;
  options.max_new_tokens = 6;
  std::vector<int64_t> generated = Generate(*model_, prompt_, options);
  ASSERT_EQ(generated.size(), 6u);  // A random model rarely emits eos.
  at::NoGradGuard no_grad;
  std::vector<int64_t> sequence = prompt_;
  for (int64_t token : generated) {
    at::Tensor ids = at::tensor(sequence, at::kLong).unsqueeze(0);
    at::Tensor logits = model_->forward(ids, at::ones_like(ids)).logits;
    EXPECT_EQ(logits[0][-1].argmax().item<int64_t>(), token);
    sequence.push_back(token);
  }
}

TEST_F(GenerationTest, BeamSearchFindsAtLeastAsLikelyAnOutput) {
  GenerationOptions options;
  options.no_repeat_ngram_size = 0;
  options.max_new_tokens = 5;
  options.length_penalty = 0.0;  // Compare raw log probabilities.
  options.beam_size = 1;
  std::vector<int64_t> greedy = Generate(*model_, prompt_, options);
  options.beam_size = 4;
  std::vector<int64_t> beam = Generate(*model_, prompt_, options);
  ASSERT_EQ(beam.size(), greedy.size());
  EXPECT_GE(LogProbability(prompt_, beam) + 1e-4,
            LogProbability(prompt_, greedy));
}

TEST_F(GenerationTest, NoRepeatNgramHoldsInOutputs) {
  GenerationOptions options;
  options.beam_size = 3;
  options.no_repeat_ngram_size = 2;
  options.max_new_tokens = 20;
  std::vector<int64_t> sequence = prompt_;
  for (int64_t token : Generate(*model_, prompt_, options)) {
    sequence.push_back(token);
  }
  std::set<std::pair<int64_t, int64_t>> bigrams;
  for (size_t i = 0; i + 1 < sequence.size(); ++i) {
    EXPECT_TRUE(bigrams.insert({sequence[i], sequence[i + 1]}).second)
        << "bigram repeated at " << i;
  }
}

TEST_F(GenerationTest, StopsAtEndOfText) {
  // Make end-of-text overwhelmingly likely: a constant final hidden state
  // (ln_f weight 0, bias b) and an end-of-text embedding of 100 b.
  {
    at::NoGradGuard no_grad;
    at::Tensor bias = at::randn({32});
    model_->transformer->ln_f->weight.zero_();
    model_->transformer->ln_f->bias.copy_(bias);
    model_->transformer->wte->weight[50256].copy_(bias * 100);
  }
  GenerationOptions options;
  options.beam_size = 2;
  options.max_new_tokens = 10;
  EXPECT_THAT(Generate(*model_, prompt_, options), IsEmpty());
}

}  // namespace
}  // namespace lora::core
