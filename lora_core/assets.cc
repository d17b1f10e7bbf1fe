#include "lora_core/assets.h"

#include <sys/stat.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace lora::core {

std::string AssetsDirectory() {
  if (const char* assets = std::getenv("LORA_SWEEP_ASSETS");
      assets != nullptr && *assets != '\0') {
    return assets;
  }
  const char* home = std::getenv("HOME");
  return absl::StrCat(home != nullptr ? home : "", "/.cache/lora-sweep/assets");
}

absl::StatusOr<std::string> AssetPath(const std::string& relative) {
  std::string path = absl::StrCat(AssetsDirectory(), "/", relative);
  struct stat info;
  if (::stat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
    return absl::NotFoundError(absl::StrCat(
        "offline asset ", path,
        " is missing: run scripts/setup.sh (set LORA_SWEEP_ASSETS to use "
        "another folder)"));
  }
  return path;
}

}  // namespace lora::core
