#include "lora_core/speedups.h"

#include <cstdlib>
#include <set>
#include <string>

namespace lora::core {
namespace {

const std::set<std::string>& Disabled() {
  static const std::set<std::string>* disabled = [] {
    auto* names = new std::set<std::string>();
    const char* value = std::getenv("LORA_CORE_DISABLE_SPEEDUPS");
    std::string text = value == nullptr ? "" : value;
    size_t start = 0;
    while (start <= text.size()) {
      size_t end = text.find(',', start);
      if (end == std::string::npos) end = text.size();
      if (end > start) names->insert(text.substr(start, end - start));
      start = end + 1;
    }
    return names;
  }();
  return *disabled;
}

}  // namespace

bool SpeedupEnabled(std::string_view name) {
  const std::set<std::string>& disabled = Disabled();
  return disabled.count("all") == 0 && disabled.count(std::string(name)) == 0;
}

}  // namespace lora::core
