#include "base/status_text.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace lora {

std::string QuotedForMessage(absl::string_view value) {
  constexpr size_t kMaxShown = 4096 + 64;
  if (value.size() <= kMaxShown) {
    return absl::StrCat("\"", absl::CEscape(value), "\"");
  }
  return absl::StrCat("\"", absl::CEscape(value.substr(0, kMaxShown)),
                      "...\" (", value.size(), " bytes)");
}

absl::Status ErrnoStatus(int error, absl::string_view what,
                         absl::string_view path) {
  std::string message =
      absl::StrCat("cannot ", what, " ", path, ": ", std::strerror(error));
  if (error == ENOENT) return absl::NotFoundError(message);
  return absl::InternalError(message);
}

absl::Status WithPrefix(absl::string_view prefix, const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(prefix, status.message()));
}

}  // namespace lora
