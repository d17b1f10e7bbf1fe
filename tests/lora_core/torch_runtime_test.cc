// Links LibTorch, runs a real forward and backward pass with an explicit
// thread count, and checks which BLAS serves float32 matrix products.
#include "lora_core/torch_runtime.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>

#include "gtest/gtest.h"

namespace lora::core {
namespace {

TEST(TorchRuntimeTest, SetThreadsIsHonoured) {
  SetTorchThreads(2);
  EXPECT_EQ(TorchThreads(), 2);
  SetTorchThreads(1);
  EXPECT_EQ(TorchThreads(), 1);
  SetTorchThreads(2);
  EXPECT_EQ(TorchThreads(), 2);
}

TEST(TorchRuntimeTest, RejectsNonPositiveThreadCount) {
  EXPECT_THROW(SetTorchThreads(0), c10::Error);
}

TEST(TorchRuntimeTest, VersionMatchesDebianLibtorch) {
  EXPECT_EQ(LibtorchVersion().rfind("1.13.", 0), 0u) << LibtorchVersion();
}

TEST(TorchRuntimeTest, ForwardAndBackwardGiveAnalyticGradients) {
  SetTorchThreads(2);
  at::manual_seed(0);
  torch::nn::Linear linear(torch::nn::LinearOptions(64, 32));
  at::Tensor input = at::randn({8, 64});
  at::Tensor output = linear->forward(input);
  at::Tensor loss = output.pow(2).sum();
  loss.backward();

  // For L = sum(y^2) with y = x W^T + b: dL/dW = 2 y^T x, dL/db = 2 sum(y).
  at::Tensor y = output.detach();
  at::Tensor expected_weight_grad = 2 * y.t().matmul(input);
  at::Tensor expected_bias_grad = 2 * y.sum(0);
  ASSERT_TRUE(linear->weight.grad().defined());
  EXPECT_TRUE(
      at::allclose(linear->weight.grad(), expected_weight_grad, 1e-4, 1e-4));
  EXPECT_TRUE(
      at::allclose(linear->bias.grad(), expected_bias_grad, 1e-4, 1e-4));
}

TEST(TorchRuntimeTest, FloatMatmulMatchesNaiveProduct) {
  SetTorchThreads(2);
  at::manual_seed(1);
  const int64_t m = 37, k = 53, n = 29;  // Odd sizes: no fast-path luck.
  at::Tensor a = at::randn({m, k});
  at::Tensor b = at::randn({k, n});
  at::Tensor product = at::mm(a, b);
  at::Tensor a64 = a.to(at::kDouble), b64 = b.to(at::kDouble);
  auto pa = a64.accessor<double, 2>();
  auto pb = b64.accessor<double, 2>();
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t t = 0; t < k; ++t) sum += pa[i][t] * pb[t][j];
      EXPECT_NEAR(product[i][j].item<float>(), sum, 1e-3);
    }
  }
}

TEST(TorchRuntimeTest, OpenBlasServesFloatGemm) {
  // A GEMM first, so whatever BLAS LibTorch uses has certainly been loaded.
  at::mm(at::ones({64, 64}), at::ones({64, 64}));
  BlasInfo blas = DescribeLoadedBlas();
  std::string mapped;
  for (const std::string& path : blas.mapped_blas_libraries) {
    mapped += path + " ";
  }
  EXPECT_FALSE(blas.mapped_blas_libraries.empty());
  EXPECT_FALSE(blas.sgemm_provider.empty()) << mapped;
  EXPECT_EQ(blas.kind, BlasKind::kOpenBlas)
      << "sgemm_ comes from " << blas.sgemm_provider << " (mapped: " << mapped
      << "); run scripts/setup.sh, which installs libopenblas0-openmp";
  for (const std::string& path : blas.mapped_blas_libraries) {
    EXPECT_EQ(path.find("/blas/libblas.so"), std::string::npos)
        << "reference BLAS mapped: " << path;
  }
}

TEST(TorchRuntimeTest, MeasuresPositiveMatmulRates) {
  SetTorchThreads(2);
  EXPECT_GT(MeasureMatmulFlops(64, 32, 16, /*bfloat16=*/false, 3), 0.0);
  EXPECT_GT(MeasureMatmulFlops(64, 32, 16, /*bfloat16=*/true, 3), 0.0);
  EXPECT_THROW(MeasureMatmulFlops(0, 32, 16, false, 3), c10::Error);
  EXPECT_THROW(MeasureMatmulFlops(64, 32, 16, false, 0), c10::Error);
}

TEST(TorchRuntimeTest, BlasKindNamesAreReadable) {
  EXPECT_EQ(BlasKindName(BlasKind::kOpenBlas), "OpenBLAS");
  EXPECT_EQ(BlasKindName(BlasKind::kReference), "reference BLAS");
  EXPECT_EQ(BlasKindName(BlasKind::kMkl), "MKL");
  EXPECT_EQ(BlasKindName(BlasKind::kUnknown), "unknown BLAS");
}

}  // namespace
}  // namespace lora::core
