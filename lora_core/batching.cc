#include "lora_core/batching.h"

#include <algorithm>
#include <numeric>

#include "lora_core/splitmix64.h"

namespace lora::core {

std::vector<size_t> DeterministicPermutation(size_t n, uint64_t seed,
                                             int64_t epoch) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  SplitMix64(seed * 0x100000001B3ULL + static_cast<uint64_t>(epoch))
      .Shuffle(order);
  return order;
}

std::vector<std::vector<size_t>> TrainingBatches(
    const std::vector<int64_t>& lengths, int64_t batch_size, uint64_t seed,
    int64_t epoch, int64_t pool_batches) {
  std::vector<size_t> order =
      DeterministicPermutation(lengths.size(), seed, epoch);
  const size_t pool =
      static_cast<size_t>(batch_size * std::max<int64_t>(pool_batches, 1));
  std::vector<std::vector<size_t>> batches;
  if (batch_size < 1) return batches;
  for (size_t start = 0; start < order.size(); start += pool) {
    const size_t end = std::min(order.size(), start + pool);
    std::stable_sort(
        order.begin() + start, order.begin() + end,
        [&lengths](size_t a, size_t b) { return lengths[a] < lengths[b]; });
    for (size_t b = start; b < end; b += batch_size) {
      batches.emplace_back(order.begin() + b,
                           order.begin() + std::min(end, b + batch_size));
    }
  }
  SplitMix64(~(seed * 0x100000001B3ULL + static_cast<uint64_t>(epoch)))
      .Shuffle(batches);
  return batches;
}

std::vector<std::vector<size_t>> EvaluationBatches(
    const std::vector<int64_t>& lengths, int64_t batch_size) {
  std::vector<size_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&lengths](size_t a, size_t b) {
    return lengths[a] < lengths[b];
  });
  std::vector<std::vector<size_t>> batches;
  if (batch_size < 1) return batches;
  for (size_t b = 0; b < order.size(); b += batch_size) {
    batches.emplace_back(
        order.begin() + b,
        order.begin() + std::min(order.size(), b + batch_size));
  }
  return batches;
}

}  // namespace lora::core
