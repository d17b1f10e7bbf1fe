// splitmix64: a tiny generator that gives the same numbers on every platform
// and standard library (std::shuffle and the std distributions do not), for
// data order and generated datasets that must be reproducible anywhere.
#ifndef LORA_SWEEP_LORA_CORE_SPLITMIX64_H_
#define LORA_SWEEP_LORA_CORE_SPLITMIX64_H_

#include <cstdint>
#include <utility>
#include <vector>

namespace lora::core {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  // In [0, n); n must be >= 1.
  uint64_t Below(uint64_t n) { return Next() % n; }

  // Fisher-Yates.
  template <typename T>
  void Shuffle(std::vector<T>& items) {
    for (size_t i = items.size(); i > 1; --i) {
      std::swap(items[i - 1], items[Below(i)]);
    }
  }

 private:
  uint64_t state_;
};

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_SPLITMIX64_H_
