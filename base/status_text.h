// Small pieces of error messages shared across the tree: quoting values that
// may come from the network or odd file names, errno statuses naming a
// path, and prefixing a status's message.
#ifndef LORA_SWEEP_BASE_STATUS_TEXT_H_
#define LORA_SWEEP_BASE_STATUS_TEXT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace lora {

// `value` in double quotes, C-escaped (a newline or control byte cannot
// forge a log line), and cut after 4,160 bytes (room for the longest valid
// artifact path) with its full size noted.
std::string QuotedForMessage(absl::string_view value);

// "cannot <what> <path>: <strerror>": NotFound for ENOENT, Internal
// otherwise.
absl::Status ErrnoStatus(int error, absl::string_view what,
                         absl::string_view path);

// `status` with `prefix` before its message (OK stays OK).
absl::Status WithPrefix(absl::string_view prefix, const absl::Status& status);

}  // namespace lora

#endif  // LORA_SWEEP_BASE_STATUS_TEXT_H_
