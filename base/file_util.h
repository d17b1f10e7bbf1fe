// Whole-file reads and crash-safe whole-file writes.
#ifndef LORA_SWEEP_BASE_FILE_UTIL_H_
#define LORA_SWEEP_BASE_FILE_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lora {

// The file's bytes. NotFound if it does not exist; Internal for other I/O
// errors. Messages name the path and the system error.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// `path` with a leading "~" or "~/" replaced by $HOME (unchanged when HOME
// is unset or the path does not start so).
std::string ExpandHome(const std::string& path);

// Writes `bytes` to `path` so that readers see either the old file or the
// complete new one, never a torn write, even across a crash: the bytes go to
// a unique temporary file in the same folder, which is flushed (fsync) and
// renamed over `path`, and the folder is synced. The temporary file is
// removed on failure. Internal for I/O errors.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view bytes);

}  // namespace lora

#endif  // LORA_SWEEP_BASE_FILE_UTIL_H_
