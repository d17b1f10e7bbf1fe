// torch_info: prints what the LoRA core will run on — LibTorch version,
// thread count, the BLAS serving float32 products — and measures the float32
// and bfloat16 matrix-product rates that bound a training step on this CPU.
//
//   bazel run //lora_core:torch_info -- --threads=2
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "lora_core/torch_runtime.h"

ABSL_FLAG(int, threads, 2, "LibTorch intra-op threads (>= 1)");
ABSL_FLAG(int, size, 1024, "square matrix size for the rate measurement");
ABSL_FLAG(int, repetitions, 5, "timed products per data type (median kept)");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Prints LibTorch's version, threads and BLAS, and measures GEMM rates.\n"
      "Example: torch_info --threads=2 --size=1024");
  absl::ParseCommandLine(argc, argv);
  const int threads = absl::GetFlag(FLAGS_threads);
  const int size = absl::GetFlag(FLAGS_size);
  const int repetitions = absl::GetFlag(FLAGS_repetitions);
  if (threads < 1 || size < 1 || repetitions < 1) {
    std::fprintf(stderr,
                 "torch_info: --threads, --size and --repetitions must be "
                 ">= 1 (got %d, %d, %d)\n",
                 threads, size, repetitions);
    return 2;
  }
  namespace core = lora::core;
  core::SetTorchThreads(threads);
  const double fp32 = core::MeasureMatmulFlops(size, size, size,
                                               /*bfloat16=*/false, repetitions);
  const double bf16 = core::MeasureMatmulFlops(size, size, size,
                                               /*bfloat16=*/true, repetitions);
  const core::BlasInfo blas = core::DescribeLoadedBlas();
  std::printf("libtorch        %s\n", core::LibtorchVersion().c_str());
  std::printf("threads         %d\n", core::TorchThreads());
  std::printf(
      "blas            %s (sgemm_ from %s)\n",
      core::BlasKindName(blas.kind).c_str(),
      blas.sgemm_provider.empty() ? "nowhere" : blas.sgemm_provider.c_str());
  std::printf("float32 matmul  %.1f GFLOP/s (%dx%dx%d, median of %d)\n",
              fp32 / 1e9, size, size, size, repetitions);
  std::printf("bfloat16 matmul %.1f GFLOP/s (%dx%dx%d, median of %d)\n",
              bf16 / 1e9, size, size, size, repetitions);
  if (blas.kind != core::BlasKind::kOpenBlas) {
    std::printf(
        "warning: float32 products run on %s; run scripts/setup.sh to "
        "install libopenblas0-openmp\n",
        core::BlasKindName(blas.kind).c_str());
    return 1;
  }
  return 0;
}
