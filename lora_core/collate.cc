#include "lora_core/collate.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>

namespace lora::core {

TensorBatch Collate(const std::vector<TokenizedExample>& examples,
                    const std::vector<size_t>& indices, int64_t pad_id) {
  TORCH_CHECK(!indices.empty(), "Collate: empty batch");
  size_t longest = 0;
  for (size_t index : indices) {
    longest = std::max(longest, examples[index].input_ids.size());
  }
  const int64_t batch = static_cast<int64_t>(indices.size());
  const int64_t seq = static_cast<int64_t>(std::max<size_t>(longest, 1));
  TensorBatch out;
  out.input_ids = at::full({batch, seq}, pad_id, at::kLong);
  out.attention_mask = at::zeros({batch, seq}, at::kLong);
  out.labels = at::empty({batch}, at::kLong);
  out.lm_labels = at::full({batch, seq}, kIgnoreIndex, at::kLong);
  auto ids = out.input_ids.accessor<int64_t, 2>();
  auto mask = out.attention_mask.accessor<int64_t, 2>();
  auto labels = out.labels.accessor<int64_t, 1>();
  auto lm_labels = out.lm_labels.accessor<int64_t, 2>();
  for (int64_t b = 0; b < batch; ++b) {
    const TokenizedExample& example = examples[indices[b]];
    const int64_t length = static_cast<int64_t>(example.input_ids.size());
    for (int64_t t = 0; t < length; ++t) {
      ids[b][t] = example.input_ids[t];
      mask[b][t] = 1;
      // Predict token t+1 from position t, for target tokens only.
      if (t + 1 < length && t + 1 >= example.prompt_length) {
        lm_labels[b][t] = example.input_ids[t + 1];
      }
    }
    labels[b] = example.label;
    out.tokens += length;
  }
  return out;
}

}  // namespace lora::core
