#include "lora_core/gpt2.h"

#include <cmath>
#include <limits>

#include "lora_core/transformer_ops.h"

namespace lora::core {
namespace {

torch::nn::LayerNorm LayerNormFor(const ModelConfig& config) {
  return MakeLayerNorm(config.hidden_size, config.layer_norm_eps);
}

LoraLinear Conv1D(int64_t in, int64_t out, int64_t segments = 1) {
  return LoraLinear(
      LoraLinearOptions(in, out).fan_in_fan_out(true).segments(segments));
}

}  // namespace

Gpt2BlockImpl::Gpt2BlockImpl(const ModelConfig& config)
    : heads_(config.num_attention_heads), activation_(config.hidden_act) {
  const int64_t h = config.hidden_size, i = config.intermediate_size;
  ln_1 = register_module("ln_1", LayerNormFor(config));
  auto attn = RegisterScope(*this, "attn");
  c_attn = attn->register_module("c_attn", Conv1D(h, 3 * h, /*segments=*/3));
  attn_c_proj = attn->register_module("c_proj", Conv1D(h, h));
  attention_dropout_ = attn->register_module(
      "attn_dropout", torch::nn::Dropout(torch::nn::DropoutOptions(
                          config.attention_probs_dropout_prob)));
  residual_dropout_ = attn->register_module(
      "resid_dropout", torch::nn::Dropout(torch::nn::DropoutOptions(
                           config.hidden_dropout_prob)));
  ln_2 = register_module("ln_2", LayerNormFor(config));
  auto mlp = RegisterScope(*this, "mlp");
  c_fc = mlp->register_module("c_fc", Conv1D(h, i));
  mlp_c_proj = mlp->register_module("c_proj", Conv1D(i, h));
}

at::Tensor Gpt2BlockImpl::forward(const at::Tensor& hidden,
                                  const at::Tensor& mask) {
  std::vector<at::Tensor> qkv =
      c_attn->forward(ln_1->forward(hidden)).chunk(3, -1);
  at::Tensor attended = MultiHeadAttention(qkv[0], qkv[1], qkv[2], heads_, mask,
                                           attention_dropout_);
  at::Tensor x =
      hidden + ApplyDropout(residual_dropout_, attn_c_proj->forward(attended));
  at::Tensor inner = Activation(c_fc->forward(ln_2->forward(x)), activation_);
  return x + ApplyDropout(residual_dropout_, mlp_c_proj->forward(inner));
}

Gpt2ModelImpl::Gpt2ModelImpl(const ModelConfig& config) : config_(config) {
  TORCH_CHECK(config.architecture == Architecture::kGpt2,
              "Gpt2Model needs a gpt2 config, got ",
              ArchitectureName(config.architecture));
  wte = register_module(
      "wte", torch::nn::Embedding(config.vocab_size, config.hidden_size));
  wpe = register_module(
      "wpe",
      torch::nn::Embedding(config.max_position_embeddings, config.hidden_size));
  embedding_dropout_ = register_module(
      "drop", torch::nn::Dropout(
                  torch::nn::DropoutOptions(config.embedding_dropout_prob)));
  h = register_module("h", torch::nn::ModuleList());
  for (int64_t n = 0; n < config.num_hidden_layers; ++n) {
    h->push_back(Gpt2Block(config));
  }
  ln_f = register_module("ln_f", LayerNormFor(config));
  init_weights();
}

void Gpt2ModelImpl::init_weights() {
  InitTransformerWeights(*this, config_.initializer_range);
  torch::NoGradGuard no_grad;
  const double residual_std =
      config_.initializer_range /
      std::sqrt(2.0 * static_cast<double>(config_.num_hidden_layers));
  for (const auto& block : *h) {
    auto* impl = block->as<Gpt2BlockImpl>();
    impl->attn_c_proj->weight.normal_(0.0, residual_std);
    impl->mlp_c_proj->weight.normal_(0.0, residual_std);
  }
}

at::Tensor Gpt2ModelImpl::forward(const at::Tensor& input_ids,
                                  const at::Tensor& attention_mask) {
  const int64_t seq = input_ids.size(1);
  TORCH_CHECK(seq <= config_.max_position_embeddings, "sequence of ", seq,
              " tokens exceeds n_positions ", config_.max_position_embeddings);
  at::Tensor positions = at::arange(seq, input_ids.options()).unsqueeze(0);
  at::Tensor hidden = ApplyDropout(
      embedding_dropout_, wte->forward(input_ids) + wpe->forward(positions));
  // Future and padded keys add up to -inf; clamping keeps a row whose keys
  // are all masked (a padded first position) finite instead of NaN.
  const at::Tensor mask =
      at::clamp_min(CausalAttentionMask(seq, hidden.options()) +
                        ExtendedAttentionMask(attention_mask),
                    std::numeric_limits<float>::lowest());
  for (const auto& block : *h) {
    hidden = block->as<Gpt2BlockImpl>()->forward(hidden, mask);
  }
  return ln_f->forward(hidden);
}

at::Tensor Gpt2ModelImpl::lm_logits(const at::Tensor& hidden) {
  return at::linear(hidden, wte->weight);
}

}  // namespace lora::core
