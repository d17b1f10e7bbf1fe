#include "lora_core/lora_linear.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>

#include <cmath>

#include "gtest/gtest.h"
#include "lora_core/cpu_autocast.h"

namespace lora::core {
namespace {

LoraLinear MakeLora(int64_t in, int64_t out, int64_t rank, double alpha,
                    bool fan_in_fan_out = false) {
  return LoraLinear(
      LoraLinearOptions(in, out).rank(rank).alpha(alpha).fan_in_fan_out(
          fan_in_fan_out));
}

void RandomizeB(LoraLinear& layer) {
  torch::NoGradGuard no_grad;
  layer->lora_B.normal_(0, 0.5);
}

TEST(LoraLinearTest, ShapesAndInitialisationFollowLoralibAndPeft) {
  at::manual_seed(0);
  LoraLinear layer = MakeLora(768, 768, 4, 16);
  EXPECT_EQ(layer->lora_A.sizes(), (std::vector<int64_t>{4, 768}));
  EXPECT_EQ(layer->lora_B.sizes(), (std::vector<int64_t>{768, 4}));
  EXPECT_EQ(layer->weight.sizes(), (std::vector<int64_t>{768, 768}));
  EXPECT_TRUE(at::equal(layer->lora_B, at::zeros_like(layer->lora_B)));
  const double bound = 1.0 / std::sqrt(768.0);
  EXPECT_LE(layer->lora_A.abs().max().item<double>(), bound);
  // Uniform over the whole range, not a narrower distribution.
  EXPECT_GT(layer->lora_A.abs().max().item<double>(), 0.9 * bound);
  EXPECT_DOUBLE_EQ(layer->scaling(), 4.0);
  EXPECT_FALSE(layer->weight.requires_grad());
  EXPECT_FALSE(layer->bias.requires_grad());
  EXPECT_TRUE(layer->lora_A.requires_grad());
  EXPECT_TRUE(layer->lora_B.requires_grad());
}

TEST(LoraLinearTest, RsLoraScalesBySquareRootOfRank) {
  LoraLinear layer(LoraLinearOptions(8, 8).rank(4).alpha(16).use_rslora(true));
  EXPECT_DOUBLE_EQ(layer->scaling(), 8.0);
}

TEST(LoraLinearTest, OutputAtInitialisationEqualsBaseExactly) {
  at::manual_seed(1);
  for (bool fan_in_fan_out : {false, true}) {
    LoraLinear layer = MakeLora(16, 24, 4, 16, fan_in_fan_out);
    at::Tensor x = at::randn({3, 5, 16});
    at::Tensor base = fan_in_fan_out
                          ? at::matmul(x, layer->weight) + layer->bias
                          : at::linear(x, layer->weight, layer->bias);
    EXPECT_TRUE(at::equal(layer->forward(x), base)) << fan_in_fan_out;
  }
}

TEST(LoraLinearTest, OnlyLoraParametersReceiveGradients) {
  at::manual_seed(2);
  LoraLinear layer = MakeLora(16, 8, 2, 4);
  layer->forward(at::randn({4, 16})).pow(2).sum().backward();
  EXPECT_FALSE(layer->weight.grad().defined());
  EXPECT_FALSE(layer->bias.grad().defined());
  ASSERT_TRUE(layer->lora_A.grad().defined());
  ASSERT_TRUE(layer->lora_B.grad().defined());
  // B = 0 at init: A's gradient is exactly zero, B's is not.
  EXPECT_EQ(layer->lora_A.grad().abs().sum().item<double>(), 0.0);
  EXPECT_GT(layer->lora_B.grad().abs().sum().item<double>(), 0.0);
}

TEST(LoraLinearTest, UpdateEqualsScaledLowRankProduct) {
  at::manual_seed(3);
  LoraLinear layer = MakeLora(10, 6, 3, 6);
  RandomizeB(layer);
  at::Tensor x = at::randn({7, 10});
  at::Tensor expected =
      at::linear(x, layer->weight, layer->bias) +
      2.0 * x.matmul(layer->lora_A.t()).matmul(layer->lora_B.t());
  EXPECT_TRUE(at::allclose(layer->forward(x), expected, 1e-5, 1e-6));
}

TEST(LoraLinearTest, MergeAndUnmergeRoundTrip) {
  at::manual_seed(4);
  for (bool fan_in_fan_out : {false, true}) {
    LoraLinear layer = MakeLora(32, 48, 4, 16, fan_in_fan_out);
    RandomizeB(layer);
    layer->eval();
    at::Tensor x = at::randn({5, 32});
    at::Tensor original_weight = layer->weight.clone();
    at::Tensor unmerged = layer->forward(x);
    layer->merge();
    EXPECT_TRUE(layer->merged());
    layer->merge();  // Idempotent.
    at::Tensor merged = layer->forward(x);
    EXPECT_TRUE(at::allclose(merged, unmerged, 1e-5, 1e-5)) << fan_in_fan_out;
    EXPECT_FALSE(at::allclose(layer->weight, original_weight));
    layer->unmerge();
    EXPECT_FALSE(layer->merged());
    EXPECT_TRUE(at::allclose(layer->weight, original_weight, 1e-6, 1e-6));
    EXPECT_TRUE(at::allclose(layer->forward(x), unmerged, 1e-6, 1e-6));
  }
}

TEST(LoraLinearTest, SegmentsAdaptOnlyEnabledThirdsOfFusedProjection) {
  at::manual_seed(5);
  // GPT-2 c_attn: Conv1D 16 -> 48 = q | k | v.
  LoraLinear layer(LoraLinearOptions(16, 48)
                       .fan_in_fan_out(true)
                       .segments(3)
                       .enabled_segments({true, false, true})
                       .rank(2)
                       .alpha(4));
  EXPECT_EQ(layer->lora_A.sizes(), (std::vector<int64_t>{4, 16}));
  EXPECT_EQ(layer->lora_B.sizes(), (std::vector<int64_t>{32, 2}));
  RandomizeB(layer);
  at::Tensor x = at::randn({3, 16});
  at::Tensor base = at::matmul(x, layer->weight) + layer->bias;
  at::Tensor out = layer->forward(x);
  EXPECT_FALSE(at::allclose(out.narrow(1, 0, 16), base.narrow(1, 0, 16)));
  EXPECT_TRUE(at::equal(out.narrow(1, 16, 16), base.narrow(1, 16, 16)));
  EXPECT_FALSE(at::allclose(out.narrow(1, 32, 16), base.narrow(1, 32, 16)));
  // q's update is B_q A_q, v's is B_v A_v, each scaled by alpha / r = 2.
  at::Tensor a = layer->lora_A, b = layer->lora_B;
  at::Tensor q_update =
      2.0 * x.matmul(a.narrow(0, 0, 2).t()).matmul(b.narrow(0, 0, 16).t());
  at::Tensor v_update =
      2.0 * x.matmul(a.narrow(0, 2, 2).t()).matmul(b.narrow(0, 16, 16).t());
  EXPECT_TRUE(at::allclose(out.narrow(1, 0, 16),
                           base.narrow(1, 0, 16) + q_update, 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(out.narrow(1, 32, 16),
                           base.narrow(1, 32, 16) + v_update, 1e-5, 1e-6));
  // delta_weight is the same update in the Conv1D layout.
  at::Tensor via_delta =
      at::matmul(x, layer->weight + layer->delta_weight()) + layer->bias;
  EXPECT_TRUE(at::allclose(via_delta, out, 1e-5, 1e-5));
}

TEST(LoraLinearTest, DropoutActsOnLoraPathOnly) {
  at::manual_seed(6);
  LoraLinear layer(LoraLinearOptions(16, 8).rank(2).alpha(4).dropout(0.5));
  layer->train();
  at::Tensor x = at::randn({32, 16});
  at::Tensor base = at::linear(x, layer->weight, layer->bias);
  // B = 0: whatever dropout does to the LoRA input, the output is the base.
  EXPECT_TRUE(at::equal(layer->forward(x), base));
  RandomizeB(layer);
  at::Tensor first = layer->forward(x), second = layer->forward(x);
  EXPECT_FALSE(at::allclose(first, second));  // Dropout is active.
  layer->eval();
  EXPECT_TRUE(at::equal(layer->forward(x), layer->forward(x)));
}

TEST(LoraLinearTest, AddLoraToLoadedLayerFreezesBase) {
  at::manual_seed(7);
  LoraLinear layer(16, 8);
  EXPECT_TRUE(layer->weight.requires_grad());
  EXPECT_FALSE(layer->has_lora());
  EXPECT_EQ(layer->named_parameters().size(), 2u);
  at::Tensor x = at::randn({4, 16});
  at::Tensor before = layer->forward(x);
  layer->add_lora(LoraLinearOptions(16, 8).rank(4).alpha(8));
  EXPECT_TRUE(layer->has_lora());
  EXPECT_FALSE(layer->weight.requires_grad());
  EXPECT_TRUE(at::equal(layer->forward(x), before));
  auto names = layer->named_parameters().keys();
  EXPECT_EQ(names,
            (std::vector<std::string>{"weight", "bias", "lora_A", "lora_B"}));
  EXPECT_THROW(layer->add_lora(LoraLinearOptions(16, 8).rank(4)), c10::Error);
}

TEST(LoraLinearTest, CloneKeepsLoraParameters) {
  at::manual_seed(8);
  LoraLinear layer = MakeLora(8, 8, 2, 2);
  RandomizeB(layer);
  auto copy = std::dynamic_pointer_cast<LoraLinearImpl>(layer->clone());
  ASSERT_NE(copy, nullptr);
  EXPECT_TRUE(at::equal(copy->lora_B, layer->lora_B));
  at::Tensor x = at::randn({2, 8});
  layer->eval();
  copy->eval();
  EXPECT_TRUE(at::equal(copy->forward(x), layer->forward(x)));
}

// What autocast computes without the layer's bf16 weight cache.
at::Tensor AutocastReference(const LoraLinear& layer, const at::Tensor& x) {
  const auto bf = [](const at::Tensor& t) { return t.to(at::kBFloat16); };
  at::Tensor base = at::linear(bf(x), bf(layer->weight), bf(layer->bias));
  at::Tensor update =
      at::linear(at::linear(bf(x), bf(layer->lora_A)), bf(layer->lora_B));
  return base + update * layer->scaling();
}

TEST(LoraLinearTest, FrozenBf16WeightCacheMatchesAutocastAndFollowsWrites) {
  at::manual_seed(0);
  LoraLinear layer = MakeLora(64, 48, 4, 16);
  RandomizeB(layer);
  at::Tensor x = at::randn({3, 5, 64});
  {
    ScopedCpuAutocast autocast;
    at::Tensor y = layer->forward(x);
    EXPECT_EQ(y.scalar_type(), at::kBFloat16);
    EXPECT_TRUE(at::equal(y, AutocastReference(layer, x)));
  }
  // Writes to the frozen weight (loading, merging) reach the next forward.
  {
    torch::NoGradGuard no_grad;
    layer->weight.mul_(-2.0);
    layer->bias.add_(1.0);
  }
  {
    ScopedCpuAutocast autocast;
    EXPECT_TRUE(at::equal(layer->forward(x), AutocastReference(layer, x)));
  }
  // A write to the bias alone is picked up too.
  {
    torch::NoGradGuard no_grad;
    layer->bias.sub_(3.0);
  }
  {
    ScopedCpuAutocast autocast;
    EXPECT_TRUE(at::equal(layer->forward(x), AutocastReference(layer, x)));
  }
  {
    torch::NoGradGuard no_grad;
    layer->weight.copy_(at::randn_like(layer->weight));
  }
  layer->merge();
  {
    ScopedCpuAutocast autocast;
    at::Tensor merged = layer->forward(x);
    const auto bf = [](const at::Tensor& t) { return t.to(at::kBFloat16); };
    EXPECT_TRUE(at::equal(
        merged, at::linear(bf(x), bf(layer->weight), bf(layer->bias))));
  }
  layer->unmerge();
  // A new weight tensor (not an in-place write) is picked up too.
  layer->weight.set_data(at::randn_like(layer->weight));
  {
    ScopedCpuAutocast autocast;
    EXPECT_TRUE(at::equal(layer->forward(x), AutocastReference(layer, x)));
  }
  // Without autocast the float32 weight is used, untouched.
  EXPECT_EQ(layer->forward(x).scalar_type(), at::kFloat);
}

TEST(LoraLinearTest, Bf16GradientsEqualAutocastWithoutTheCache) {
  at::manual_seed(1);
  LoraLinear frozen = MakeLora(32, 32, 2, 8);
  RandomizeB(frozen);
  // The same layer with a trainable base: autocast casts its weight itself.
  LoraLinear plain = std::dynamic_pointer_cast<LoraLinearImpl>(frozen->clone());
  plain->weight.set_requires_grad(true);
  plain->bias.set_requires_grad(true);
  at::Tensor x = at::randn({4, 32});
  std::vector<at::Tensor> grads;
  for (LoraLinear& layer : {std::ref(frozen), std::ref(plain)}) {
    at::Tensor input = x.clone().set_requires_grad(true);
    {
      ScopedCpuAutocast autocast;
      at::Tensor y = layer->forward(input);
      EXPECT_EQ(y.scalar_type(), at::kBFloat16);
      y.to(at::kFloat).square().sum().backward();
    }
    ASSERT_TRUE(layer->lora_A.grad().defined());
    ASSERT_TRUE(input.grad().defined());
    grads.push_back(layer->lora_A.grad());
    grads.push_back(layer->lora_B.grad());
    grads.push_back(input.grad());
  }
  EXPECT_TRUE(at::equal(grads[0], grads[3]));
  EXPECT_TRUE(at::equal(grads[1], grads[4]));
  EXPECT_TRUE(at::equal(grads[2], grads[5]));
  EXPECT_FALSE(frozen->weight.grad().defined());
}

TEST(LoraLinearTest, RejectsBadSegmentConfigurations) {
  EXPECT_THROW(LoraLinear(LoraLinearOptions(8, 10).segments(3)), c10::Error);
  EXPECT_THROW(
      LoraLinear(LoraLinearOptions(8, 9).segments(3).rank(2).enabled_segments(
          {true, false})),
      c10::Error);
  EXPECT_THROW(
      LoraLinear(LoraLinearOptions(8, 9).segments(3).rank(2).enabled_segments(
          {false, false, false})),
      c10::Error);
}

}  // namespace
}  // namespace lora::core
