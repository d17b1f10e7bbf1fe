#include "lora_core/roberta.h"

#include <ATen/autocast_mode.h>

#include "lora_core/speedups.h"
#include "lora_core/transformer_ops.h"

namespace lora::core {
namespace {

torch::nn::LayerNorm LayerNormFor(const ModelConfig& config) {
  return MakeLayerNorm(config.hidden_size, config.layer_norm_eps);
}

torch::nn::Dropout MakeDropout(double p) {
  return torch::nn::Dropout(torch::nn::DropoutOptions(p));
}

}  // namespace

at::Tensor RobertaPositionIds(const at::Tensor& input_ids,
                              int64_t pad_token_id) {
  at::Tensor real = input_ids.ne(pad_token_id).to(at::kLong);
  return at::cumsum(real, 1) * real + pad_token_id;
}

RobertaLayerImpl::RobertaLayerImpl(const ModelConfig& config)
    : heads_(config.num_attention_heads), activation_(config.hidden_act) {
  const int64_t h = config.hidden_size, i = config.intermediate_size;
  auto attention = RegisterScope(*this, "attention");
  auto self = RegisterScope(*attention, "self");
  query = self->register_module("query", LoraLinear(h, h));
  key = self->register_module("key", LoraLinear(h, h));
  value = self->register_module("value", LoraLinear(h, h));
  attention_dropout_ = self->register_module(
      "dropout", MakeDropout(config.attention_probs_dropout_prob));
  auto attention_output = RegisterScope(*attention, "output");
  attention_output_dense =
      attention_output->register_module("dense", LoraLinear(h, h));
  attention_output_norm =
      attention_output->register_module("LayerNorm", LayerNormFor(config));
  hidden_dropout_ = attention_output->register_module(
      "dropout", MakeDropout(config.hidden_dropout_prob));
  auto intermediate = RegisterScope(*this, "intermediate");
  intermediate_dense = intermediate->register_module("dense", LoraLinear(h, i));
  auto output = RegisterScope(*this, "output");
  output_dense = output->register_module("dense", LoraLinear(i, h));
  output_norm = output->register_module("LayerNorm", LayerNormFor(config));
}

at::Tensor RobertaLayerImpl::forward(const at::Tensor& hidden,
                                     const at::Tensor& mask) {
  // Under CPU autocast the projections read one lower-precision copy of the
  // (float32) hidden state: autocast would cast it once per matrix product
  // (query, key, value and the LoRA paths), since it caches casts of leaf
  // tensors only. The residual below keeps the float32 original.
  static const bool share = SpeedupEnabled("shared_bf16_input");
  const at::Tensor projected =
      share && at::autocast::is_cpu_enabled() &&
              hidden.scalar_type() == at::kFloat
          ? hidden.to(at::autocast::get_autocast_cpu_dtype())
          : hidden;
  at::Tensor context = MultiHeadAttention(
      query->forward(projected), key->forward(projected),
      value->forward(projected), heads_, mask, attention_dropout_);
  at::Tensor attended = attention_output_norm->forward(
      ApplyDropout(hidden_dropout_, attention_output_dense->forward(context)) +
      hidden);
  at::Tensor inner =
      Activation(intermediate_dense->forward(attended), activation_);
  return output_norm->forward(
      ApplyDropout(hidden_dropout_, output_dense->forward(inner)) + attended);
}

RobertaModelImpl::RobertaModelImpl(const ModelConfig& config,
                                   bool add_pooling_layer)
    : config_(config) {
  TORCH_CHECK(config.architecture == Architecture::kRoberta,
              "RobertaModel needs a roberta config, got ",
              ArchitectureName(config.architecture));
  const int64_t h = config.hidden_size;
  auto embeddings = RegisterScope(*this, "embeddings");
  word_embeddings = embeddings->register_module(
      "word_embeddings",
      torch::nn::Embedding(torch::nn::EmbeddingOptions(config.vocab_size, h)
                               .padding_idx(config.pad_token_id)));
  position_embeddings = embeddings->register_module(
      "position_embeddings",
      torch::nn::Embedding(
          torch::nn::EmbeddingOptions(config.max_position_embeddings, h)
              .padding_idx(config.pad_token_id)));
  token_type_embeddings = embeddings->register_module(
      "token_type_embeddings", torch::nn::Embedding(torch::nn::EmbeddingOptions(
                                   config.type_vocab_size, h)));
  embeddings_norm =
      embeddings->register_module("LayerNorm", LayerNormFor(config));
  embedding_dropout_ = embeddings->register_module(
      "dropout", MakeDropout(config.embedding_dropout_prob));
  auto encoder = RegisterScope(*this, "encoder");
  layers = encoder->register_module("layer", torch::nn::ModuleList());
  for (int64_t n = 0; n < config.num_hidden_layers; ++n) {
    layers->push_back(RobertaLayer(config));
  }
  if (add_pooling_layer) {
    auto pooler = RegisterScope(*this, "pooler");
    pooler_dense = pooler->register_module("dense", LoraLinear(h, h));
  }
  init_weights();
}

void RobertaModelImpl::init_weights() {
  InitTransformerWeights(*this, config_.initializer_range);
}

at::Tensor RobertaModelImpl::forward(const at::Tensor& input_ids,
                                     const at::Tensor& attention_mask) {
  TORCH_CHECK(input_ids.size(1) <= LongestUsableSequence(config_),
              "sequence of ", input_ids.size(1), " tokens exceeds the ",
              LongestUsableSequence(config_), " that ", config_.name, " takes");
  at::Tensor positions = RobertaPositionIds(input_ids, config_.pad_token_id);
  at::Tensor hidden = word_embeddings->forward(input_ids) +
                      position_embeddings->forward(positions) +
                      token_type_embeddings->forward(at::zeros_like(input_ids));
  hidden = ApplyDropout(embedding_dropout_, embeddings_norm->forward(hidden));
  const at::Tensor mask = ExtendedAttentionMask(attention_mask);
  for (const auto& layer : *layers) {
    hidden = layer->as<RobertaLayerImpl>()->forward(hidden, mask);
  }
  return hidden;
}

at::Tensor RobertaModelImpl::pool(const at::Tensor& last_hidden_state) {
  TORCH_CHECK(has_pooler(), "this RobertaModel was built without a pooler");
  return at::tanh(pooler_dense->forward(last_hidden_state.select(1, 0)));
}

RobertaClassificationHeadImpl::RobertaClassificationHeadImpl(
    const ModelConfig& config, int64_t num_labels) {
  dense = register_module("dense",
                          LoraLinear(config.hidden_size, config.hidden_size));
  out_proj =
      register_module("out_proj", LoraLinear(config.hidden_size, num_labels));
  dropout_ =
      register_module("dropout", MakeDropout(config.hidden_dropout_prob));
  InitTransformerWeights(*this, config.initializer_range);
}

at::Tensor RobertaClassificationHeadImpl::forward(
    const at::Tensor& last_hidden_state) {
  at::Tensor x = ApplyDropout(dropout_, last_hidden_state.select(1, 0));
  x = ApplyDropout(dropout_, at::tanh(dense->forward(x)));
  return out_proj->forward(x);
}

RobertaLmHeadImpl::RobertaLmHeadImpl(const ModelConfig& config,
                                     torch::nn::Embedding word_embeddings)
    : word_embeddings_(std::move(word_embeddings)) {
  dense = register_module("dense",
                          LoraLinear(config.hidden_size, config.hidden_size));
  layer_norm = register_module("layer_norm", LayerNormFor(config));
  bias = register_parameter("bias", at::zeros({config.vocab_size}));
  InitTransformerWeights(*this, config.initializer_range);
}

at::Tensor RobertaLmHeadImpl::forward(const at::Tensor& hidden) {
  // LayerNorm in float32: under bf16 autocast the dense output is bf16, and
  // LibTorch 1.13's CPU layer_norm does not mix a bf16 input with float32
  // weights.
  at::Tensor x =
      layer_norm->forward(at::gelu(dense->forward(hidden)).to(at::kFloat));
  return at::linear(x, word_embeddings_->weight, bias);
}

}  // namespace lora::core
