// Turns a batch of tokenised examples into tensors with dynamic padding (to
// the longest example of the batch).
#ifndef LORA_SWEEP_LORA_CORE_COLLATE_H_
#define LORA_SWEEP_LORA_CORE_COLLATE_H_

#include <ATen/core/Tensor.h>

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
  int64_t tokens = 0;  // non-padding tokens in the batch
};

// Collates `examples[indices]`, padding with `pad_id`. Requires a non-empty
// `indices`.
TensorBatch Collate(const std::vector<TokenizedExample>& examples,
                    const std::vector<size_t>& indices, int64_t pad_id);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_COLLATE_H_
