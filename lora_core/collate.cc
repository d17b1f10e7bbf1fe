#include "lora_core/collate.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
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

TensorBatch SliceRows(const TensorBatch& batch, int64_t begin, int64_t end) {
  TORCH_CHECK(0 <= begin && begin < end && end <= batch.input_ids.size(0),
              "SliceRows: rows [", begin, ", ", end, ") of a batch of ",
              batch.input_ids.size(0));
  const at::Tensor mask = batch.attention_mask.slice(0, begin, end);
  // Right-padded: a row's length is its mask's sum.
  const int64_t longest =
      std::max<int64_t>(mask.sum(1).max().item<int64_t>(), 1);
  auto rows = [&](const at::Tensor& tensor) -> at::Tensor {
    if (!tensor.defined()) return {};
    at::Tensor sliced = tensor.slice(0, begin, end);
    if (sliced.dim() == 2) sliced = sliced.slice(1, 0, longest);
    return sliced.contiguous();
  };
  TensorBatch out;
  out.input_ids = rows(batch.input_ids);
  out.attention_mask = rows(batch.attention_mask);
  out.labels = rows(batch.labels);
  out.lm_labels = rows(batch.lm_labels);
  out.mlm_labels = rows(batch.mlm_labels);
  out.tokens = mask.sum().item<int64_t>();
  return out;
}

void ApplyMlmMasking(TensorBatch* batch, const MlmMasking& masking,
                     uint64_t seed) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor ids = batch->input_ids;
  at::Tensor eligible = batch->attention_mask.to(at::kBool);
  for (int64_t special : masking.special_ids) {
    eligible = eligible & ids.ne(special);
  }
  at::Tensor draw = at::rand(ids.sizes(), generator, at::kFloat);
  at::Tensor chosen = eligible & draw.lt(masking.probability);
  batch->mlm_labels = at::where(chosen, ids, at::full_like(ids, kIgnoreIndex));
  at::Tensor action = at::rand(ids.sizes(), generator, at::kFloat);
  at::Tensor to_mask = chosen & action.lt(0.8);
  at::Tensor to_random = chosen & action.ge(0.8) & action.lt(0.9);
  at::Tensor random_ids =
      at::randint(masking.first_ordinary_id, masking.vocab_size, ids.sizes(),
                  generator, at::kLong);
  // Specials drawn as replacements are swapped for <mask> (rare).
  at::Tensor random_special = at::zeros_like(to_random);
  for (int64_t special : masking.special_ids) {
    random_special = random_special | random_ids.eq(special);
  }
  at::Tensor corrupted =
      at::where(to_mask, at::full_like(ids, masking.mask_id), ids);
  corrupted = at::where(to_random & ~random_special, random_ids, corrupted);
  corrupted = at::where(to_random & random_special,
                        at::full_like(ids, masking.mask_id), corrupted);
  batch->input_ids = corrupted;
}

}  // namespace lora::core
