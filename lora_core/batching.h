// Which examples go into which batch, without LibTorch. Training batches are
// shuffled deterministically for a (seed, epoch) and bucketed by length so
// that dynamic padding wastes little; evaluation batches are sorted by
// length. collate.h turns a batch into tensors.
#ifndef LORA_SWEEP_LORA_CORE_BATCHING_H_
#define LORA_SWEEP_LORA_CORE_BATCHING_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lora::core {

// A permutation of [0, n) that depends only on (seed, epoch): Fisher-Yates
// over splitmix64, so it is the same on every platform and library.
std::vector<size_t> DeterministicPermutation(size_t n, uint64_t seed,
                                             int64_t epoch);

// Training batches of example indices: shuffle, cut into pools of
// `batch_size * pool_batches` examples, sort each pool by length, cut into
// batches of `batch_size` (the last may be smaller), shuffle the batch order.
// Every index appears exactly once. No batches for batch_size < 1.
std::vector<std::vector<size_t>> TrainingBatches(
    const std::vector<int64_t>& lengths, int64_t batch_size, uint64_t seed,
    int64_t epoch, int64_t pool_batches = 50);

// Evaluation batches: indices sorted by length (stable), then cut.
std::vector<std::vector<size_t>> EvaluationBatches(
    const std::vector<int64_t>& lengths, int64_t batch_size);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_BATCHING_H_
