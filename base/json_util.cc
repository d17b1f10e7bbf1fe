#include "base/json_util.h"

#include <algorithm>

namespace lora {

int JsonNestingDepth(absl::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // Skip the escaped character.
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

std::string JsonExcerpt(const nlohmann::json& value, size_t max_length) {
  std::string text = value.dump();
  if (text.size() > max_length && max_length >= 3) {
    text = text.substr(0, max_length - 3) + "...";
  }
  return text;
}

}  // namespace lora
