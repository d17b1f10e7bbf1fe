// The safetensors file format, read and written here without LibTorch:
//
//   8 bytes   little-endian uint64 N, the header's length
//   N bytes   UTF-8 JSON object: {"<tensor>": {"dtype": "F32", "shape": [..],
//             "data_offsets": [begin, end]}, ..., "__metadata__": {..}}
//   rest      raw little-endian tensor data; offsets are relative to it
//
// Files are untrusted input. The reader rejects, with a Status naming the
// file, the tensor and the problem (never a crash): files shorter than 8
// bytes, a header longer than 100 MB or past the end of the file, a header
// that is not a JSON object or repeats a key, entries with missing or
// ill-typed fields, unknown dtypes, shapes whose byte count disagrees with
// the offsets, offsets out of range, overlapping tensors, holes between
// tensors, and trailing bytes no tensor covers.
//
// Supported dtypes: F32, F16, BF16, I64. tensor_io.h converts to and from
// at::Tensor.
#ifndef LORA_SWEEP_LORA_CORE_SAFETENSORS_H_
#define LORA_SWEEP_LORA_CORE_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace lora::core {

enum class DType { kF32, kF16, kBF16, kI64 };

// "F32", "F16", "BF16", "I64".
std::string DTypeName(DType dtype);
// Bytes per element.
int64_t DTypeSize(DType dtype);

// "[2, 3]": a shape as error messages show it.
std::string ShapeText(absl::Span<const int64_t> shape);

// The largest header the reader accepts (as the reference implementation).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// One tensor of an open file. `data` points into the reader's mapping and is
// valid while the reader lives; it may be unaligned.
struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  int64_t num_elements = 0;
  const uint8_t* data = nullptr;
  uint64_t size_bytes = 0;
};

// A validated safetensors file or buffer. Immutable after opening; safe to
// read from several threads.
class SafetensorsReader {
 public:
  // Memory-maps `path` and validates it. NotFound if the file does not
  // exist; InvalidArgument for every format problem listed above.
  static absl::StatusOr<std::unique_ptr<SafetensorsReader>> Open(
      const std::string& path);

  // Validates an in-memory file. `bytes` is not copied and must outlive the
  // reader; `source` names it in errors.
  static absl::StatusOr<std::unique_ptr<SafetensorsReader>> FromBuffer(
      absl::string_view bytes, const std::string& source);

  ~SafetensorsReader();
  SafetensorsReader(const SafetensorsReader&) = delete;
  SafetensorsReader& operator=(const SafetensorsReader&) = delete;

  // Tensors in data order.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  // nullptr if there is no tensor called `name`.
  const SafetensorsTensor* Find(absl::string_view name) const;
  // The "__metadata__" entries (string to string).
  const std::map<std::string, std::string>& metadata() const {
    return metadata_;
  }
  const std::string& source() const { return source_; }

 private:
  SafetensorsReader() = default;
  absl::Status Parse(absl::string_view bytes);

  std::string source_;
  void* mapping_ = nullptr;
  size_t mapping_size_ = 0;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write. `data` must hold exactly num_elements * DTypeSize bytes
// in little-endian order.
struct SafetensorsTensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  uint64_t size_bytes = 0;
};

// Writes a file: tensors sorted by name, header padded with spaces to a
// multiple of 8 bytes, `metadata` as "__metadata__". Atomic: the bytes go to
// a temporary file in the same folder, which is renamed over `path` only when
// complete, so a crash never leaves a half-written file. InvalidArgument for
// duplicate or reserved names, negative dimensions or a byte count that
// disagrees with the shape; Internal for I/O errors.
absl::Status WriteSafetensors(
    const std::string& path, std::vector<SafetensorsTensorToWrite> tensors,
    const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_SAFETENSORS_H_
