#include "lora_core/lora_linear.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <c10/util/Exception.h>
#include <torch/nn/init.h>

#include <cmath>

#include "lora_core/speedups.h"

namespace lora::core {

LoraLinearImpl::LoraLinearImpl(LoraLinearOptions options)
    : options(std::move(options)) {
  reset();
}

void LoraLinearImpl::reset() {
  TORCH_CHECK(options.in_features() > 0 && options.out_features() > 0,
              "LoraLinear: in_features and out_features must be positive");
  TORCH_CHECK(options.segments() >= 1 &&
                  options.out_features() % options.segments() == 0,
              "LoraLinear: out_features ", options.out_features(),
              " is not divisible into ", options.segments(), " segments");
  const std::vector<int64_t> shape =
      options.fan_in_fan_out()
          ? std::vector<int64_t>{options.in_features(), options.out_features()}
          : std::vector<int64_t>{options.out_features(), options.in_features()};
  weight = register_parameter("weight", at::empty(shape));
  if (options.bias()) {
    bias = register_parameter("bias", at::empty({options.out_features()}));
  } else {
    bias = register_parameter("bias", at::Tensor(), /*requires_grad=*/false);
  }
  merged_ = false;
  if (options.rank() > 0) register_lora();
  reset_parameters();
}

int64_t LoraLinearImpl::enabled_segment_count() const {
  if (options.enabled_segments().empty()) return 1;
  int64_t count = 0;
  for (bool enabled : options.enabled_segments()) count += enabled ? 1 : 0;
  return count;
}

void LoraLinearImpl::register_lora() {
  const std::vector<bool>& enabled = options.enabled_segments();
  TORCH_CHECK(options.rank() >= 1, "LoraLinear: LoRA rank must be >= 1, got ",
              options.rank());
  TORCH_CHECK(enabled.empty() ||
                  static_cast<int64_t>(enabled.size()) == options.segments(),
              "LoraLinear: ", enabled.size(), " segment flags for ",
              options.segments(), " segments");
  const int64_t blocks = enabled_segment_count();
  TORCH_CHECK(blocks > 0, "LoraLinear: no segment is enabled");
  const int64_t block_out = enabled.empty()
                                ? options.out_features()
                                : options.out_features() / options.segments();
  lora_A = register_parameter(
      "lora_A", at::empty({blocks * options.rank(), options.in_features()}));
  lora_B = register_parameter("lora_B",
                              at::zeros({blocks * block_out, options.rank()}));
  lora_dropout_ = register_module(
      "lora_dropout",
      torch::nn::Dropout(torch::nn::DropoutOptions(options.dropout())));
  weight.set_requires_grad(false);
  if (bias.defined()) bias.set_requires_grad(false);
}

void LoraLinearImpl::reset_parameters() {
  // nn.Linear's defaults; models re-initialise their weights HF style.
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const double bound =
        1.0 / std::sqrt(static_cast<double>(options.in_features()));
    torch::nn::init::uniform_(bias, -bound, bound);
  }
  if (lora_A.defined()) {
    // Bound 1/sqrt(in): kaiming_uniform with a = sqrt(5) on an r x in matrix.
    torch::nn::init::kaiming_uniform_(lora_A, std::sqrt(5.0));
    torch::NoGradGuard no_grad;
    lora_B.zero_();
  }
}

void LoraLinearImpl::add_lora(const LoraLinearOptions& lora) {
  TORCH_CHECK(!has_lora(), "LoraLinear: the layer already has LoRA");
  TORCH_CHECK(!merged_, "LoraLinear: cannot add LoRA to a merged layer");
  options.rank(lora.rank())
      .alpha(lora.alpha())
      .dropout(lora.dropout())
      .use_rslora(lora.use_rslora())
      .enabled_segments(lora.enabled_segments());
  register_lora();
  torch::nn::init::kaiming_uniform_(lora_A, std::sqrt(5.0));
}

double LoraLinearImpl::scaling() const {
  if (!has_lora()) return 0.0;
  const double rank = static_cast<double>(options.rank());
  return options.use_rslora() ? options.alpha() / std::sqrt(rank)
                              : options.alpha() / rank;
}

namespace {

int64_t VersionOf(const at::Tensor& tensor) {
  if (!tensor.defined()) return -1;
  return static_cast<int64_t>(
      tensor.unsafeGetTensorImpl()->version_counter().current_version());
}

const void* StorageOf(const at::Tensor& tensor) {
  return tensor.defined() ? tensor.data_ptr() : nullptr;
}

}  // namespace

void LoraLinearImpl::RefreshBf16Copies() {
  torch::NoGradGuard no_grad;
  if (!weight_bf16_.defined() || VersionOf(weight) != weight_bf16_version_ ||
      StorageOf(weight) != weight_bf16_source_) {
    weight_bf16_ = weight.to(at::kBFloat16);
    weight_bf16_version_ = VersionOf(weight);
    weight_bf16_source_ = StorageOf(weight);
  }
  if (VersionOf(bias) != bias_bf16_version_ ||
      StorageOf(bias) != bias_bf16_source_) {
    bias_bf16_ = bias.defined() ? bias.to(at::kBFloat16) : at::Tensor();
    bias_bf16_version_ = VersionOf(bias);
    bias_bf16_source_ = StorageOf(bias);
  }
}

at::Tensor LoraLinearImpl::forward(const at::Tensor& input) {
  // A frozen layer under bf16 autocast: the cached bf16 copies (autocast
  // leaves bf16 operands alone). A trainable weight goes through autocast,
  // whose cache keeps its cast for the whole forward pass.
  static const bool use_bf16_copy = SpeedupEnabled("frozen_bf16_weights");
  static const bool add_in_place = SpeedupEnabled("inplace_lora_add");
  const bool frozen_bf16 =
      use_bf16_copy && at::autocast::is_cpu_enabled() &&
      at::autocast::get_autocast_cpu_dtype() == at::kBFloat16 &&
      !weight.requires_grad() && (!bias.defined() || !bias.requires_grad()) &&
      weight.device().is_cpu();
  if (frozen_bf16) RefreshBf16Copies();
  const at::Tensor& w = frozen_bf16 ? weight_bf16_ : weight;
  const at::Tensor& b = frozen_bf16 ? bias_bf16_ : bias;
  at::Tensor output;
  if (options.fan_in_fan_out()) {
    output = at::matmul(input, w);
    if (b.defined()) output = output + b;
  } else {
    output = at::linear(input, w, b);
  }
  if (!has_lora() || merged_) return output;
  const at::Tensor hidden =
      at::linear(lora_dropout_->forward(input), lora_A);  // [..., blocks*r]
  const std::vector<bool>& enabled = options.enabled_segments();
  if (enabled.empty()) {
    // In place: the base product's backward does not need its output.
    at::Tensor update = at::linear(hidden, lora_B);
    if (add_in_place && update.scalar_type() == output.scalar_type()) {
      return output.add_(update, scaling());
    }
    return output + update * scaling();
  }
  const int64_t rank = options.rank();
  const int64_t block_out = options.out_features() / options.segments();
  std::vector<at::Tensor> pieces;
  int64_t block = 0;
  for (bool on : enabled) {
    if (on) {
      pieces.push_back(
          at::linear(hidden.narrow(-1, block * rank, rank),
                     lora_B.narrow(0, block * block_out, block_out)));
      ++block;
    } else {
      std::vector<int64_t> shape = hidden.sizes().vec();
      shape.back() = block_out;
      pieces.push_back(at::zeros(shape, output.options()));
    }
  }
  // Under autocast the pieces and the base output may differ in dtype.
  at::Tensor update = at::cat(pieces, -1).to(output.scalar_type());
  return output + update * scaling();
}

at::Tensor LoraLinearImpl::delta_weight() const {
  TORCH_CHECK(has_lora(), "LoraLinear: no LoRA update on this layer");
  const std::vector<bool>& enabled = options.enabled_segments();
  at::Tensor delta;  // out x in
  if (enabled.empty()) {
    delta = at::matmul(lora_B, lora_A);
  } else {
    const int64_t rank = options.rank();
    const int64_t block_out = options.out_features() / options.segments();
    delta = at::zeros({options.out_features(), options.in_features()},
                      lora_A.options());
    int64_t block = 0;
    for (int64_t segment = 0; segment < options.segments(); ++segment) {
      if (!enabled[segment]) continue;
      delta.narrow(0, segment * block_out, block_out)
          .copy_(at::matmul(lora_B.narrow(0, block * block_out, block_out),
                            lora_A.narrow(0, block * rank, rank)));
      ++block;
    }
  }
  delta = delta * scaling();
  return options.fan_in_fan_out() ? delta.t().contiguous() : delta;
}

void LoraLinearImpl::merge() {
  if (!has_lora() || merged_) return;
  torch::NoGradGuard no_grad;
  weight.add_(delta_weight());
  merged_ = true;
}

void LoraLinearImpl::unmerge() {
  if (!has_lora() || !merged_) return;
  torch::NoGradGuard no_grad;
  weight.sub_(delta_weight());
  merged_ = false;
}

std::shared_ptr<torch::nn::Module> LoraLinearImpl::clone(
    const c10::optional<torch::Device>& device) const {
  std::shared_ptr<torch::nn::Module> copy =
      torch::nn::Cloneable<LoraLinearImpl>::clone(device);
  auto* layer = dynamic_cast<LoraLinearImpl*>(copy.get());
  layer->merged_ = merged_;
  auto originals = named_parameters(/*recurse=*/false);
  for (auto& item : layer->named_parameters(/*recurse=*/false)) {
    item.value().set_requires_grad(originals[item.key()].requires_grad());
  }
  return copy;
}

void LoraLinearImpl::pretty_print(std::ostream& stream) const {
  stream << "lora::core::LoraLinear(in_features=" << options.in_features()
         << ", out_features=" << options.out_features()
         << ", bias=" << (options.bias() ? "true" : "false");
  if (options.fan_in_fan_out()) stream << ", fan_in_fan_out=true";
  if (has_lora()) {
    stream << ", r=" << options.rank() << ", alpha=" << options.alpha()
           << ", dropout=" << options.dropout();
    if (options.use_rslora()) stream << ", rslora=true";
    if (!options.enabled_segments().empty()) {
      stream << ", segments=[";
      for (std::size_t i = 0; i < options.enabled_segments().size(); ++i) {
        stream << (i ? "," : "") << (options.enabled_segments()[i] ? 1 : 0);
      }
      stream << "]";
    }
  }
  stream << ")";
}

}  // namespace lora::core
