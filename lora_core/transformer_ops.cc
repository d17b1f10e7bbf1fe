#include "lora_core/transformer_ops.h"

#include <c10/util/Exception.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>

#include <cmath>
#include <limits>

#include "lora_core/lora_linear.h"
#include "lora_core/speedups.h"

namespace lora::core {

at::Tensor ExtendedAttentionMask(const at::Tensor& attention_mask) {
  const float lowest = std::numeric_limits<float>::lowest();
  at::Tensor keep = attention_mask.to(at::kFloat);
  return ((1.0f - keep) * lowest).unsqueeze(1).unsqueeze(2);
}

at::Tensor CausalAttentionMask(int64_t seq_len, const at::TensorOptions& like) {
  const float lowest = std::numeric_limits<float>::lowest();
  at::Tensor future =
      at::ones({seq_len, seq_len}, like.dtype(at::kBool)).triu(1);
  return at::zeros({seq_len, seq_len}, like.dtype(at::kFloat))
      .masked_fill(future, lowest)
      .unsqueeze(0)
      .unsqueeze(0);
}

at::Tensor ApplyDropout(const torch::nn::Dropout& dropout,
                        const at::Tensor& x) {
  const double p = dropout->options.p();
  if (!dropout->is_training() || p == 0.0 || x.numel() == 0) return x;
  if (p >= 1.0) return x * 0;
  static const bool fast = SpeedupEnabled("fast_dropout");
  if (!fast) return at::dropout(x, p, /*train=*/true);
  // Keep an element when its 16-bit lane, read as a signed number, is at
  // least `threshold`: P(drop) = dropped / 65536.
  const int64_t dropped = static_cast<int64_t>(std::llround(p * 65536.0));
  const double keep_probability = 1.0 - static_cast<double>(dropped) / 65536.0;
  const int64_t n = x.numel();
  at::Tensor bits = at::empty({(n + 3) / 4}, x.options().dtype(at::kLong));
  // from = INT64_MIN, no upper bound: all 64 bits random.
  bits.random_(std::numeric_limits<int64_t>::min(), c10::optional<int64_t>());
  at::Tensor keep = bits.view(at::kShort).narrow(0, 0, n).ge(-32768 + dropped);
  at::Tensor scaled_mask =
      keep.view(x.sizes()).to(x.scalar_type()).mul_(1.0 / keep_probability);
  return x * scaled_mask;
}

at::Tensor Activation(const at::Tensor& x, const std::string& name) {
  if (name == "gelu") return at::gelu(x);
  if (name == "gelu_new") return at::gelu(x, "tanh");
  TORCH_CHECK(false, "unknown activation \"", name, "\"");
}

at::Tensor MultiHeadAttention(const at::Tensor& q, const at::Tensor& k,
                              const at::Tensor& v, int64_t heads,
                              const at::Tensor& mask,
                              const torch::nn::Dropout& dropout) {
  const int64_t batch = q.size(0), seq = q.size(1), hidden = q.size(2);
  const int64_t head_dim = hidden / heads;
  auto split = [&](const at::Tensor& x) {
    return x.view({batch, x.size(1), heads, head_dim}).transpose(1, 2);
  };
  at::Tensor scores = at::matmul(split(q), split(k).transpose(-1, -2)) /
                      std::sqrt(static_cast<double>(head_dim));
  if (mask.defined()) scores = scores + mask;
  at::Tensor probs = ApplyDropout(dropout, at::softmax(scores, -1));
  at::Tensor context = at::matmul(probs.to(v.scalar_type()), split(v));
  return context.transpose(1, 2).reshape({batch, seq, hidden});
}

std::shared_ptr<torch::nn::Module> RegisterScope(torch::nn::Module& parent,
                                                 const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

torch::nn::LayerNorm MakeLayerNorm(int64_t hidden_size, double eps) {
  return torch::nn::LayerNorm(
      torch::nn::LayerNormOptions({hidden_size}).eps(eps));
}

void InitTransformerWeights(torch::nn::Module& module, double std) {
  torch::NoGradGuard no_grad;
  // modules(include_self=true) needs the module to be owned by a shared_ptr
  // already, which it is not while its constructor runs.
  std::vector<torch::nn::Module*> all = {&module};
  for (const auto& child : module.modules(/*include_self=*/false)) {
    all.push_back(child.get());
  }
  for (torch::nn::Module* child : all) {
    if (auto* linear = dynamic_cast<LoraLinearImpl*>(child)) {
      linear->weight.normal_(0.0, std);
      if (linear->bias.defined()) linear->bias.zero_();
    } else if (auto* embedding =
                   dynamic_cast<torch::nn::EmbeddingImpl*>(child)) {
      embedding->weight.normal_(0.0, std);
      if (auto padding = embedding->options.padding_idx()) {
        embedding->weight[*padding].zero_();
      }
    } else if (auto* norm = dynamic_cast<torch::nn::LayerNormImpl*>(child)) {
      norm->weight.fill_(1.0);
      norm->bias.zero_();
    }
  }
}

}  // namespace lora::core
