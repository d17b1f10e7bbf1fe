#include "lora_core/tensor_io.h"

#include <ATen/ATen.h>

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "lora_core/safetensors.h"

namespace lora::core {
namespace {

at::ScalarType ToScalarType(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return at::kFloat;
    case DType::kF16:
      return at::kHalf;
    case DType::kBF16:
      return at::kBFloat16;
    case DType::kI64:
      return at::kLong;
  }
  return at::kFloat;
}

absl::StatusOr<DType> ToDType(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return DType::kF32;
    case at::kHalf:
      return DType::kF16;
    case at::kBFloat16:
      return DType::kBF16;
    case at::kLong:
      return DType::kI64;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("dtype ", c10::toString(type),
                       " cannot be written (F32, F16, BF16, I64 only)"));
  }
}

}  // namespace

absl::StatusOr<NamedTensors> LoadSafetensors(const std::string& path) {
  LORA_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsReader> reader,
                        SafetensorsReader::Open(path));
  NamedTensors tensors;
  for (const SafetensorsTensor& entry : reader->tensors()) {
    at::Tensor tensor = at::empty(entry.shape, ToScalarType(entry.dtype));
    // memcpy, not from_blob: mapped data may be unaligned for its dtype.
    if (entry.size_bytes > 0) {
      std::memcpy(tensor.data_ptr(), entry.data, entry.size_bytes);
    }
    tensors.emplace(entry.name, std::move(tensor));
  }
  return tensors;
}

absl::Status SaveSafetensors(const std::string& path,
                             const NamedTensors& tensors,
                             std::map<std::string, std::string> metadata) {
  metadata.emplace("format", "pt");
  std::vector<at::Tensor> keep_alive;
  std::vector<SafetensorsTensorToWrite> entries;
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor \"", name, "\" is undefined"));
    }
    absl::StatusOr<DType> dtype = ToDType(tensor.scalar_type());
    if (!dtype.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": tensor \"", name, "\": ", dtype.status().message()));
    }
    at::Tensor cpu = tensor.detach().to(at::kCPU).contiguous();
    keep_alive.push_back(cpu);
    entries.push_back(SafetensorsTensorToWrite{
        name, *dtype, cpu.sizes().vec(), cpu.data_ptr(),
        static_cast<uint64_t>(cpu.numel() * cpu.element_size())});
  }
  return WriteSafetensors(path, std::move(entries), metadata);
}

}  // namespace lora::core
