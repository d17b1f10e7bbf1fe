// safetensors files to and from at::Tensor (see safetensors.h for the format
// and its validation).
#ifndef LORA_SWEEP_LORA_CORE_TENSOR_IO_H_
#define LORA_SWEEP_LORA_CORE_TENSOR_IO_H_

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lora::core {

using NamedTensors = std::map<std::string, at::Tensor>;

// Reads every tensor of a safetensors file into owned, contiguous CPU
// tensors (float32, float16, bfloat16, int64). Errors as
// SafetensorsReader::Open.
absl::StatusOr<NamedTensors> LoadSafetensors(const std::string& path);

// Writes tensors (moved to CPU and made contiguous) with
// "__metadata__": {"format": "pt"} plus `metadata`, atomically.
// InvalidArgument for an undefined tensor or a dtype other than float32,
// float16, bfloat16 and int64, naming the tensor.
absl::Status SaveSafetensors(const std::string& path,
                             const NamedTensors& tensors,
                             std::map<std::string, std::string> metadata = {});

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_TENSOR_IO_H_
