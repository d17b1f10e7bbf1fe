#include "lora_core/utf8.h"

namespace lora::core {

std::vector<CodePoint> DecodeUtf8(absl::string_view text) {
  std::vector<CodePoint> out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char lead = static_cast<unsigned char>(text[i]);
    size_t length = 0;
    char32_t value = 0;
    if (lead < 0x80) {
      length = 1;
      value = lead;
    } else if ((lead >> 5) == 0x6) {
      length = 2;
      value = lead & 0x1F;
    } else if ((lead >> 4) == 0xE) {
      length = 3;
      value = lead & 0x0F;
    } else if ((lead >> 3) == 0x1E) {
      length = 4;
      value = lead & 0x07;
    }
    bool valid = length > 0 && i + length <= text.size();
    for (size_t k = 1; valid && k < length; ++k) {
      const unsigned char next = static_cast<unsigned char>(text[i + k]);
      if ((next >> 6) != 0x2) {
        valid = false;
      } else {
        value = (value << 6) | (next & 0x3F);
      }
    }
    if (valid) {
      static constexpr char32_t kMinimum[5] = {0, 0, 0x80, 0x800, 0x10000};
      valid = value >= kMinimum[length] && value <= 0x10FFFF &&
              !(value >= 0xD800 && value <= 0xDFFF);
    }
    if (valid) {
      out.push_back(CodePoint{value, i, length});
      i += length;
    } else {
      out.push_back(CodePoint{kInvalidUtf8Byte, i, 1});
      i += 1;
    }
  }
  return out;
}

std::string EncodeUtf8(char32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return out;
}

size_t FirstInvalidUtf8(absl::string_view text) {
  for (const CodePoint& cp : DecodeUtf8(text)) {
    if (cp.value == kInvalidUtf8Byte) return cp.offset;
  }
  return absl::string_view::npos;
}

}  // namespace lora::core
