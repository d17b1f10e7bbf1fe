#include "lora_core/transformer_ops.h"

#include <ATen/ATen.h>

#include "gtest/gtest.h"

namespace lora::core {
namespace {

torch::nn::Dropout MakeDropout(double p) {
  return torch::nn::Dropout(torch::nn::DropoutOptions(p));
}

TEST(ApplyDropoutTest, ZeroesAboutPAndScalesTheRest) {
  at::manual_seed(0);
  torch::nn::Dropout dropout = MakeDropout(0.1);
  at::Tensor x = at::ones({64, 64, 97});  // odd size: a partial last draw
  at::Tensor y = ApplyDropout(dropout, x);
  ASSERT_EQ(y.sizes(), x.sizes());
  const double kept = y.ne(0).sum().item<double>() / y.numel();
  EXPECT_NEAR(kept, 0.9, 0.005);  // 397,312 elements: 5 standard deviations
  // p = 0.1 rounds to 6554/65536.
  const double scale = 1.0 / (1.0 - 6554.0 / 65536.0);
  at::Tensor nonzero = y.masked_select(y.ne(0));
  EXPECT_TRUE(at::allclose(nonzero, at::full_like(nonzero, scale)));
  // Expectation preserved.
  EXPECT_NEAR(y.mean().item<double>(), 1.0, 0.01);
}

TEST(ApplyDropoutTest, EveryLaneOfADrawIsUniform) {
  // Each 64-bit draw serves four consecutive elements: each of the four
  // positions must drop at rate p (a biased top lane would show here).
  at::manual_seed(1);
  torch::nn::Dropout dropout = MakeDropout(0.5);
  at::Tensor y = ApplyDropout(dropout, at::ones({400000}));
  at::Tensor kept = y.ne(0).to(at::kDouble).view({-1, 4}).mean(0);
  for (int lane = 0; lane < 4; ++lane) {
    EXPECT_NEAR(kept[lane].item<double>(), 0.5, 0.006) << "lane " << lane;
  }
}

TEST(ApplyDropoutTest, IdentityInEvalModeAndAtZero) {
  at::Tensor x = at::randn({8, 16});
  torch::nn::Dropout dropout = MakeDropout(0.3);
  dropout->eval();
  EXPECT_TRUE(ApplyDropout(dropout, x).is_same(x));
  torch::nn::Dropout none = MakeDropout(0.0);
  EXPECT_TRUE(ApplyDropout(none, x).is_same(x));
  torch::nn::Dropout all = MakeDropout(1.0);
  EXPECT_TRUE(at::equal(ApplyDropout(all, x), at::zeros_like(x)));
}

TEST(ApplyDropoutTest, ReproducibleFromTheGeneratorAndGradientIsTheMask) {
  torch::nn::Dropout dropout = MakeDropout(0.2);
  at::Tensor x = at::randn({32, 48}).set_requires_grad(true);
  at::manual_seed(7);
  at::Tensor first = ApplyDropout(dropout, x);
  at::manual_seed(7);
  at::Tensor second = ApplyDropout(dropout, x);
  EXPECT_TRUE(at::equal(first, second));
  first.sum().backward();
  // d/dx of sum(x * mask * scale) = mask * scale = y / x.
  at::Tensor expected = first.detach().div(x.detach());
  EXPECT_TRUE(at::allclose(x.grad(), expected, 1e-5, 1e-6));
}

TEST(ApplyDropoutTest, KeepsBfloat16) {
  at::manual_seed(3);
  torch::nn::Dropout dropout = MakeDropout(0.1);
  at::Tensor y = ApplyDropout(dropout, at::ones({4, 8}, at::kBFloat16));
  EXPECT_EQ(y.scalar_type(), at::kBFloat16);
}

}  // namespace
}  // namespace lora::core
