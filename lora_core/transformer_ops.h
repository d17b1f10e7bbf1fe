// Pieces shared by the RoBERTa and GPT-2 implementations: attention masks,
// activations, scaled dot-product attention over heads, and Hugging Face's
// weight initialisation.
#ifndef LORA_SWEEP_LORA_CORE_TRANSFORMER_OPS_H_
#define LORA_SWEEP_LORA_CORE_TRANSFORMER_OPS_H_

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/normalization.h>

#include <string>

namespace lora::core {

// Additive attention mask [batch, 1, 1, seq] from a [batch, seq] mask of
// 1 (attend) / 0 (padding): 0 where attended, float32's lowest value where
// not (Hugging Face's convention).
at::Tensor ExtendedAttentionMask(const at::Tensor& attention_mask);

// Additive causal mask [1, 1, seq, seq]: 0 on and below the diagonal,
// float32's lowest value above it.
at::Tensor CausalAttentionMask(int64_t seq_len, const at::TensorOptions& like);

// Inverted dropout with `dropout`'s probability p while it is training, the
// identity otherwise: each element is zeroed with probability p and the rest
// scaled by 1 / (1 - p), as torch::nn::Dropout does. The mask is drawn 16
// bits per element from 64-bit draws of the default generator (four
// elements per draw; at::bernoulli_ draws per element and costs about as
// much as a matrix product of the same size on 2 cores), so p is rounded to
// a multiple of 1/65536 (0.1 becomes 0.100006). Differentiable: the
// gradient is the output's gradient times the same scaled mask.
at::Tensor ApplyDropout(const torch::nn::Dropout& dropout, const at::Tensor& x);

// "gelu": exact (erf); "gelu_new": the tanh approximation GPT-2 uses.
at::Tensor Activation(const at::Tensor& x, const std::string& name);

// softmax(q k^T / sqrt(d) + mask) v over `heads` heads. q, k, v:
// [batch, seq, hidden]; mask broadcastable to [batch, heads, seq, seq] (or
// undefined). `dropout` acts on the attention probabilities. Returns
// [batch, seq, hidden].
at::Tensor MultiHeadAttention(const at::Tensor& q, const at::Tensor& k,
                              const at::Tensor& v, int64_t heads,
                              const at::Tensor& mask,
                              const torch::nn::Dropout& dropout);

// Registers an empty module under `name` in `parent`: it only gives its
// children a name prefix ("attention", "encoder", "attn", ...) so that
// parameter names equal Hugging Face's state-dict keys.
std::shared_ptr<torch::nn::Module> RegisterScope(torch::nn::Module& parent,
                                                 const std::string& name);

// LayerNorm over `hidden_size` with epsilon `eps`.
torch::nn::LayerNorm MakeLayerNorm(int64_t hidden_size, double eps);

// Hugging Face's _init_weights for every submodule of `module`: linear
// weights (LoraLinear base weights, Embedding and Linear) N(0, std), biases
// zero, LayerNorm weight 1 and bias 0, Embedding padding rows zero. LoRA
// matrices are left alone. Draws from the global generator: seed first.
void InitTransformerWeights(torch::nn::Module& module, double std);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_TRANSFORMER_OPS_H_
