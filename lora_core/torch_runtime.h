// Process-wide LibTorch settings and facts: thread counts, the LibTorch
// version, and which BLAS library actually serves matrix products.
//
// LibTorch defaults to one thread on these machines, and Debian's libtorch
// falls back to the reference BLAS (~6 GFLOP/s) unless OpenBLAS is installed
// (~158 GFLOP/s on 2 cores), so every binary that trains sets threads
// explicitly and can say which BLAS it got.
#ifndef LORA_SWEEP_LORA_CORE_TORCH_RUNTIME_H_
#define LORA_SWEEP_LORA_CORE_TORCH_RUNTIME_H_

#include <cstdint>
#include <string>
#include <vector>

namespace lora::core {

// Sets LibTorch's intra-op thread count (and its inter-op count, which
// LibTorch allows only once per process, before any inter-op work) to
// `threads`. `threads` must be >= 1. Thread-compatible: call it at start-up,
// before training starts.
void SetTorchThreads(int threads);

// The intra-op thread count in force.
int TorchThreads();

// "MAJOR.MINOR.PATCH" of the LibTorch headers this binary was built against.
std::string LibtorchVersion();

enum class BlasKind {
  kOpenBlas,   // OpenBLAS (Debian libopenblas0-openmp or -pthread).
  kReference,  // Netlib reference BLAS: correct but ~25x slower.
  kMkl,        // Intel MKL.
  kUnknown,    // No BLAS mapped, or one this function does not recognise.
};

// Human-readable name of a BlasKind ("OpenBLAS", "reference BLAS", ...).
std::string BlasKindName(BlasKind kind);

struct BlasInfo {
  BlasKind kind = BlasKind::kUnknown;
  // The library that provides `sgemm_` to this process (what LibTorch calls
  // for float32 matrix products), from dladdr; empty if none is loaded.
  std::string sgemm_provider;
  // Every mapped shared object whose file name mentions blas, from
  // /proc/self/maps, in map order without duplicates.
  std::vector<std::string> mapped_blas_libraries;
};

// Inspects the running process. Linux only; reads /proc/self/maps.
BlasInfo DescribeLoadedBlas();

// Median FLOP/s of `repetitions` timed (m x k) * (k x n) matrix products on
// the CPU with the current thread count, after one untimed warm-up; with
// `bfloat16` the operands are bfloat16 (oneDNN), else float32 (BLAS). A
// product counts 2*m*k*n FLOPs. Requires positive sizes and repetitions.
double MeasureMatmulFlops(int64_t m, int64_t k, int64_t n, bool bfloat16,
                          int repetitions);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_TORCH_RUNTIME_H_
