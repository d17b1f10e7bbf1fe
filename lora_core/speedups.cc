#include "lora_core/speedups.h"

#include <cstdlib>
#include <set>
#include <string>

#include "absl/strings/str_split.h"

namespace lora::core {
namespace {

const std::set<std::string>& Disabled() {
  static const std::set<std::string>* disabled = [] {
    const char* value = std::getenv("LORA_CORE_DISABLE_SPEEDUPS");
    return new std::set<std::string>(
        absl::StrSplit(value == nullptr ? "" : value, ',', absl::SkipEmpty()));
  }();
  return *disabled;
}

}  // namespace

bool SpeedupEnabled(std::string_view name) {
  const std::set<std::string>& disabled = Disabled();
  return disabled.count("all") == 0 && disabled.count(std::string(name)) == 0;
}

}  // namespace lora::core
