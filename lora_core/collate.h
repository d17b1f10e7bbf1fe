// Turns a batch of tokenised examples into tensors with dynamic padding (to
// the longest example of the batch).
#ifndef LORA_SWEEP_LORA_CORE_COLLATE_H_
#define LORA_SWEEP_LORA_CORE_COLLATE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "lora_core/text_datasets.h"

namespace lora::core {

// Label value that language-model losses ignore (PyTorch's default
// ignore_index).
inline constexpr int64_t kIgnoreIndex = -100;

struct TensorBatch {
  at::Tensor input_ids;       // [batch, seq] int64, right-padded
  at::Tensor attention_mask;  // [batch, seq] int64, 1 = token
  at::Tensor labels;          // [batch] int64 class labels (classification)
  // [batch, seq] int64 next-token targets for causal LM: position t holds
  // input t+1, or kIgnoreIndex for prompt tokens, padding and the last
  // position.
  at::Tensor lm_labels;
  // [batch, seq] int64 masked-LM targets: the original token where
  // ApplyMlmMasking masked one, kIgnoreIndex elsewhere. Undefined until then.
  at::Tensor mlm_labels;
  int64_t tokens = 0;  // non-padding tokens in the batch
};

// Masked-LM corruption (RoBERTa / BERT): each real, non-special token is
// chosen with `probability`; a chosen token becomes <mask> 80% of the time,
// a random ordinary token 10%, and stays 10%. Draws from a generator seeded
// with `seed` alone, so the same (seed) always masks the same way — the
// trainer derives it from (run seed, epoch, batch) for masks that change
// every epoch yet survive a resume.
struct MlmMasking {
  int64_t mask_id = -1;
  // Random replacements are drawn from [first_ordinary_id, vocab_size)
  // without the ids in `special_ids`.
  int64_t first_ordinary_id = 0;
  int64_t vocab_size = 0;
  std::vector<int64_t> special_ids;
  double probability = 0.15;
};
void ApplyMlmMasking(TensorBatch* batch, const MlmMasking& masking,
                     uint64_t seed);

// Collates `examples[indices]`, padding with `pad_id`. Requires a non-empty
// `indices`.
TensorBatch Collate(const std::vector<TokenizedExample>& examples,
                    const std::vector<size_t>& indices, int64_t pad_id);

// Rows [begin, end) of a collated batch (0 <= begin < end <= rows), without
// the trailing padding columns none of those rows needs, and `tokens`
// recounted. Labels and masked-LM targets come along, so a data-parallel
// rank's share of a global batch is exactly those rows of the global batch,
// masks included.
TensorBatch SliceRows(const TensorBatch& batch, int64_t begin, int64_t end);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_COLLATE_H_
