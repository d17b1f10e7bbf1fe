// GPT-2 (Radford et al., 2019) in LibTorch, laid out like Hugging Face's
// GPT2Model so a HF state dict loads by name: wte, wpe, h.N.ln_1,
// h.N.attn.c_attn, h.N.attn.c_proj, h.N.ln_2, h.N.mlp.c_fc, h.N.mlp.c_proj,
// ln_f. Its Conv1D layers are LoraLinear with fan_in_fan_out (weights stored
// in x out). Causal self-attention; the LM head is tied to wte.
// Not thread-safe, as any torch::nn module.
#ifndef LORA_SWEEP_LORA_CORE_GPT2_H_
#define LORA_SWEEP_LORA_CORE_GPT2_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>

#include "lora_core/lora_linear.h"
#include "lora_core/model_config.h"

namespace lora::core {

class Gpt2BlockImpl : public torch::nn::Module {
 public:
  explicit Gpt2BlockImpl(const ModelConfig& config);
  // mask: the additive causal + padding mask [batch or 1, 1, seq, seq].
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& mask);

  torch::nn::LayerNorm ln_1{nullptr};
  LoraLinear c_attn{nullptr};  // hidden -> 3 * hidden (q | k | v)
  LoraLinear attn_c_proj{nullptr};
  torch::nn::LayerNorm ln_2{nullptr};
  LoraLinear c_fc{nullptr};
  LoraLinear mlp_c_proj{nullptr};

 private:
  int64_t heads_;
  std::string activation_;
  torch::nn::Dropout attention_dropout_{nullptr};
  torch::nn::Dropout residual_dropout_{nullptr};
};
TORCH_MODULE(Gpt2Block);

class Gpt2ModelImpl : public torch::nn::Module {
 public:
  explicit Gpt2ModelImpl(const ModelConfig& config);

  // input_ids, attention_mask: [batch, seq] int64; seq <= n_positions.
  // Positions are 0..seq-1 for every row (Hugging Face's default), so pad on
  // the right. Returns the hidden state after ln_f [batch, seq, hidden].
  at::Tensor forward(const at::Tensor& input_ids,
                     const at::Tensor& attention_mask);

  // Logits over the vocabulary with the tied LM head (hidden @ wte^T).
  at::Tensor lm_logits(const at::Tensor& hidden);

  // Hugging Face's init: N(0, initializer_range) everywhere, and
  // N(0, initializer_range / sqrt(2 * n_layer)) for the residual
  // projections (c_proj), biases zero, LayerNorm 1 / 0.
  void init_weights();

  const ModelConfig& config() const { return config_; }

  torch::nn::Embedding wte{nullptr};
  torch::nn::Embedding wpe{nullptr};
  torch::nn::ModuleList h{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};

 private:
  ModelConfig config_;
  torch::nn::Dropout embedding_dropout_{nullptr};
};
TORCH_MODULE(Gpt2Model);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_GPT2_H_
