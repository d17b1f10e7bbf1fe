// UTF-8 decoding shared by the tokenizer and the dataset readers.
// Torch-free.
#ifndef LORA_SWEEP_LORA_CORE_UTF8_H_
#define LORA_SWEEP_LORA_CORE_UTF8_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace lora::core {

// A code point decoded from text, or one invalid byte.
struct CodePoint {
  char32_t value;  // kInvalidUtf8Byte for a byte that starts no valid char
  size_t offset;   // byte offset in the text
  size_t length;   // bytes
};

inline constexpr char32_t kInvalidUtf8Byte = 0xFFFFFFFF;

// Decodes `text`; each byte that does not start a valid UTF-8 sequence
// (overlong forms, surrogates and values past U+10FFFF included) becomes one
// CodePoint of kInvalidUtf8Byte, so nothing is lost.
std::vector<CodePoint> DecodeUtf8(absl::string_view text);

// The UTF-8 bytes of a code point (<= U+10FFFF).
std::string EncodeUtf8(char32_t code_point);

// Offset of the first byte that is not valid UTF-8, or npos.
size_t FirstInvalidUtf8(absl::string_view text);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_UTF8_H_
