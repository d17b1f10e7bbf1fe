// RoBERTa (Liu et al., 2019) in LibTorch, laid out like Hugging Face's
// RobertaModel so a HF state dict loads by name: embeddings.*,
// encoder.layer.N.attention.self.{query,key,value},
// encoder.layer.N.attention.output.{dense,LayerNorm}, encoder.layer.N.
// intermediate.dense, encoder.layer.N.output.{dense,LayerNorm}, pooler.dense.
// Every linear layer is a LoraLinear, so LoRA can be added to any of them.
//
// Also the task heads that sit on it: Hugging Face's
// RobertaClassificationHead and the masked-LM head (decoder tied to the word
// embeddings). Not thread-safe, as any torch::nn module.
#ifndef LORA_SWEEP_LORA_CORE_ROBERTA_H_
#define LORA_SWEEP_LORA_CORE_ROBERTA_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>

#include <memory>

#include "lora_core/lora_linear.h"
#include "lora_core/model_config.h"
#include "lora_core/transformer_ops.h"

namespace lora::core {

// Position ids as RoBERTa computes them: real tokens count up from
// pad_token_id + 1, padding tokens get pad_token_id. [batch, seq] int64.
at::Tensor RobertaPositionIds(const at::Tensor& input_ids,
                              int64_t pad_token_id);

class RobertaLayerImpl : public torch::nn::Module {
 public:
  explicit RobertaLayerImpl(const ModelConfig& config);
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& mask);

  LoraLinear query{nullptr}, key{nullptr}, value{nullptr};
  LoraLinear attention_output_dense{nullptr};
  torch::nn::LayerNorm attention_output_norm{nullptr};
  LoraLinear intermediate_dense{nullptr};
  LoraLinear output_dense{nullptr};
  torch::nn::LayerNorm output_norm{nullptr};

 private:
  int64_t heads_;
  std::string activation_;
  torch::nn::Dropout attention_dropout_{nullptr};
  torch::nn::Dropout hidden_dropout_{nullptr};
};
TORCH_MODULE(RobertaLayer);

class RobertaModelImpl : public torch::nn::Module {
 public:
  // `add_pooling_layer` as in Hugging Face: task heads other than the seed's
  // linear-on-pooler head use none.
  RobertaModelImpl(const ModelConfig& config, bool add_pooling_layer);

  // input_ids, attention_mask: [batch, seq] int64. Returns the last hidden
  // state [batch, seq, hidden].
  at::Tensor forward(const at::Tensor& input_ids,
                     const at::Tensor& attention_mask);

  // tanh(pooler.dense(first token)). Requires a pooling layer.
  at::Tensor pool(const at::Tensor& last_hidden_state);

  // Hugging Face's _init_weights: linear and embedding weights
  // N(0, initializer_range), biases and padding rows zero, LayerNorm 1 / 0.
  void init_weights();

  const ModelConfig& config() const { return config_; }
  bool has_pooler() const { return !pooler_dense.is_empty(); }

  torch::nn::Embedding word_embeddings{nullptr};
  torch::nn::Embedding position_embeddings{nullptr};
  torch::nn::Embedding token_type_embeddings{nullptr};
  torch::nn::LayerNorm embeddings_norm{nullptr};
  torch::nn::ModuleList layers{nullptr};
  LoraLinear pooler_dense{nullptr};

 private:
  ModelConfig config_;
  torch::nn::Dropout embedding_dropout_{nullptr};
};
TORCH_MODULE(RobertaModel);

// Hugging Face's RobertaClassificationHead: dropout, dense, tanh, dropout,
// out_proj, on the <s> token's hidden state. Keys dense.*, out_proj.*.
class RobertaClassificationHeadImpl : public torch::nn::Module {
 public:
  RobertaClassificationHeadImpl(const ModelConfig& config, int64_t num_labels);
  at::Tensor forward(const at::Tensor& last_hidden_state);

  LoraLinear dense{nullptr};
  LoraLinear out_proj{nullptr};

 private:
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(RobertaClassificationHead);

// RobertaForMaskedLM's head: dense, gelu, layer_norm, then a decoder whose
// weight is the word embedding matrix (tied, not a parameter here) plus
// `bias`. Keys dense.*, layer_norm.*, bias.
class RobertaLmHeadImpl : public torch::nn::Module {
 public:
  RobertaLmHeadImpl(const ModelConfig& config,
                    torch::nn::Embedding word_embeddings);
  // [batch, seq, hidden] -> logits [batch, seq, vocab].
  at::Tensor forward(const at::Tensor& hidden);

  LoraLinear dense{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};
  at::Tensor bias;

 private:
  torch::nn::Embedding word_embeddings_;
};
TORCH_MODULE(RobertaLmHead);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_ROBERTA_H_
