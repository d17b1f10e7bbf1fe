// Guards for untrusted JSON. nlohmann's parser and dump() recurse, so a
// deeply nested document (a few MB of "[[[[...") overflows the stack: check
// the nesting depth with this flat scanner before parsing. And quote values
// in error messages through JsonExcerpt, which bounds their length.
#ifndef LORA_SWEEP_BASE_JSON_UTIL_H_
#define LORA_SWEEP_BASE_JSON_UTIL_H_

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/string_view.h"

namespace lora {

// The deepest nesting of [ ] and { } outside strings (0 for a scalar).
// Malformed text gives some number; parsing then reports the error.
int JsonNestingDepth(absl::string_view text);

// `value` as JSON text, cut to at most `max_length` characters ("..." at the
// end when cut).
std::string JsonExcerpt(const nlohmann::json& value, size_t max_length = 60);

}  // namespace lora

#endif  // LORA_SWEEP_BASE_JSON_UTIL_H_
