#include "lora_core/torch_runtime.h"

#include <dlfcn.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>
#include <vector>

namespace lora::core {
namespace {

bool Contains(const std::string& text, const char* needle) {
  return text.find(needle) != std::string::npos;
}

BlasKind ClassifyBlasPath(const std::string& path) {
  std::string lower = path;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (Contains(lower, "openblas")) return BlasKind::kOpenBlas;
  if (Contains(lower, "mkl")) return BlasKind::kMkl;
  // Debian installs the netlib reference implementation as
  // /usr/lib/<triplet>/blas/libblas.so.3 (the alternatives' fallback).
  if (Contains(lower, "/blas/libblas.so")) return BlasKind::kReference;
  return BlasKind::kUnknown;
}

}  // namespace

void SetTorchThreads(int threads) {
  TORCH_CHECK(threads >= 1, "thread count must be >= 1, got ", threads);
  at::set_num_threads(threads);
  // LibTorch throws if the inter-op pool size is set twice or after the pool
  // started; set it once per process and leave it afterwards.
  static std::once_flag interop_once;
  std::call_once(interop_once, [threads] {
    try {
      at::set_num_interop_threads(threads);
    } catch (const c10::Error&) {
      // The pool already started (some op ran first): its size stays as is,
      // which only matters for inter-op parallelism we do not use.
    }
  });
}

int TorchThreads() { return at::get_num_threads(); }

std::string LibtorchVersion() {
  std::ostringstream out;
  out << TORCH_VERSION_MAJOR << "." << TORCH_VERSION_MINOR << "."
      << TORCH_VERSION_PATCH;
  return out.str();
}

std::string BlasKindName(BlasKind kind) {
  switch (kind) {
    case BlasKind::kOpenBlas:
      return "OpenBLAS";
    case BlasKind::kReference:
      return "reference BLAS";
    case BlasKind::kMkl:
      return "MKL";
    case BlasKind::kUnknown:
      break;
  }
  return "unknown BLAS";
}

BlasInfo DescribeLoadedBlas() {
  BlasInfo info;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    std::size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    std::string path = line.substr(slash);
    std::string file = path.substr(path.rfind('/') + 1);
    std::string lower_file = file;
    std::transform(lower_file.begin(), lower_file.end(), lower_file.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (!Contains(lower_file, "blas")) continue;
    if (std::find(info.mapped_blas_libraries.begin(),
                  info.mapped_blas_libraries.end(),
                  path) == info.mapped_blas_libraries.end()) {
      info.mapped_blas_libraries.push_back(path);
    }
  }
  // The provider of sgemm_ decides which implementation float32 GEMMs run
  // on; a mapped-but-unused OpenBLAS (pulled in by LAPACK) must not fool us.
  if (void* sgemm = dlsym(RTLD_DEFAULT, "sgemm_"); sgemm != nullptr) {
    Dl_info where;
    if (dladdr(sgemm, &where) != 0 && where.dli_fname != nullptr) {
      info.sgemm_provider = where.dli_fname;
    }
  }
  if (!info.sgemm_provider.empty()) {
    // The provider's own path may be a neutral name (libblas.so.3) in an
    // implementation-specific folder; match its mapped, resolved path.
    std::string provider_file =
        info.sgemm_provider.substr(info.sgemm_provider.rfind('/') + 1);
    info.kind = ClassifyBlasPath(info.sgemm_provider);
    for (const std::string& path : info.mapped_blas_libraries) {
      if (info.kind != BlasKind::kUnknown) break;
      if (path.substr(path.rfind('/') + 1) == provider_file) {
        info.kind = ClassifyBlasPath(path);
      }
    }
  }
  return info;
}

double MeasureMatmulFlops(int64_t m, int64_t k, int64_t n, bool bfloat16,
                          int repetitions) {
  TORCH_CHECK(m > 0 && k > 0 && n > 0 && repetitions > 0,
              "sizes and repetitions must be positive");
  const at::ScalarType dtype = bfloat16 ? at::kBFloat16 : at::kFloat;
  at::Tensor a = at::randn({m, k}).to(dtype);
  at::Tensor b = at::randn({k, n}).to(dtype);
  at::Tensor out = at::mm(a, b);  // Warm-up: thread pools, oneDNN kernels.
  std::vector<double> rates;
  for (int i = 0; i < repetitions; ++i) {
    auto start = std::chrono::steady_clock::now();
    at::mm_out(out, a, b);
    std::chrono::duration<double> elapsed =
        std::chrono::steady_clock::now() - start;
    rates.push_back(2.0 * m * k * n / std::max(elapsed.count(), 1e-9));
  }
  std::nth_element(rates.begin(), rates.begin() + rates.size() / 2,
                   rates.end());
  return rates[rates.size() / 2];
}

}  // namespace lora::core
