// LoraLinear: a linear layer (nn.Linear, or GPT-2's Conv1D with
// `fan_in_fan_out`) with an optional low-rank update, as in Hu et al. (2021):
//
//   y = x W^T + b + scaling * dropout(x) A^T B^T,  scaling = alpha / r
//
// (alpha / sqrt(r) with rsLoRA). W and b are frozen once LoRA is added; A
// (r x in) starts Kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(in),
// 1/sqrt(in)), as loralib and PEFT do, and B (out x r) starts at zero, so
// the output at initialisation equals the base layer's exactly.
//
// Segments: GPT-2's c_attn computes q, k and v in one fused projection. With
// `enabled_segments` = {true, false, true} the update touches only the q
// and v thirds of the output (loralib's MergedLinear): A stacks one r x in
// block per enabled segment and B one (out/segments) x r block per enabled
// segment.
//
// Under CPU bf16 autocast a frozen base layer (weight without
// requires_grad) multiplies with a bfloat16 copy of its weight and bias made
// once and kept until either changes (tracked by their version counters and
// storage: loading, merging, any in-place write), instead of autocast casting
// the float32 weight on every call (autocast caches casts only of weights that
// require grad). The LoRA update is added in place to the base output.
//
// Parameters are registered as "weight", "bias", "lora_A", "lora_B", so the
// base layer's keys equal Hugging Face's. Not thread-safe; use one instance
// per training thread, as any torch::nn module.
#ifndef LORA_SWEEP_LORA_CORE_LORA_LINEAR_H_
#define LORA_SWEEP_LORA_CORE_LORA_LINEAR_H_

#include <torch/nn/cloneable.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <ostream>
#include <vector>

namespace lora::core {

struct LoraLinearOptions {
  LoraLinearOptions(int64_t in_features, int64_t out_features)
      : in_features_(in_features), out_features_(out_features) {}

  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, out_features);
  // Register a bias.
  TORCH_ARG(bool, bias) = true;
  // Weight stored in x out (GPT-2 Conv1D) instead of out x in.
  TORCH_ARG(bool, fan_in_fan_out) = false;
  // 0: a plain linear layer, no LoRA parameters.
  TORCH_ARG(int64_t, rank) = 0;
  TORCH_ARG(double, alpha) = 1.0;
  // Dropout on the LoRA path's input only.
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(bool, use_rslora) = false;
  // Number of equal output blocks (3 for GPT-2's fused q,k,v).
  TORCH_ARG(int64_t, segments) = 1;
  // Empty: the update covers the whole output. Otherwise one flag per
  // segment.
  TORCH_ARG(std::vector<bool>, enabled_segments) = {};
};

class LoraLinearImpl : public torch::nn::Cloneable<LoraLinearImpl> {
 public:
  LoraLinearImpl(int64_t in_features, int64_t out_features)
      : LoraLinearImpl(LoraLinearOptions(in_features, out_features)) {}
  explicit LoraLinearImpl(LoraLinearOptions options);

  // Registers the base parameters (and LoRA ones when rank > 0) afresh.
  void reset() override;

  // nn.Linear's default initialisation of weight and bias; LoRA A
  // Kaiming-uniform (a = sqrt(5)) and B zeros.
  void reset_parameters();

  at::Tensor forward(const at::Tensor& input);

  // Adds a LoRA update to a layer built without one (after its base weights
  // were loaded), and freezes the base weight and bias. The rank, alpha,
  // dropout, rsLoRA and segment fields of `lora` are used; throws
  // (c10::Error) if the layer already has LoRA, rank < 1, or the segment
  // flags do not fit `segments`.
  void add_lora(const LoraLinearOptions& lora);

  bool has_lora() const { return options.rank() > 0; }

  // alpha / r, or alpha / sqrt(r) with rsLoRA; 0 without LoRA.
  double scaling() const;

  // scaling * B A laid out like `weight` (out x in, or in x out with
  // fan_in_fan_out), with zero rows for disabled segments.
  at::Tensor delta_weight() const;

  // Folds the update into `weight` (inference without the extra matmuls) and
  // back. Idempotent: merging a merged layer changes nothing.
  void merge();
  void unmerge();
  bool merged() const { return merged_; }

  void pretty_print(std::ostream& stream) const override;

  // Cloneable's clone() re-runs reset() and copies the parameters; this also
  // keeps the merged flag and each parameter's requires_grad, so a clone of
  // a merged or unfrozen layer behaves like the original.
  std::shared_ptr<torch::nn::Module> clone(
      const c10::optional<torch::Device>& device = c10::nullopt) const override;

  LoraLinearOptions options;
  at::Tensor weight;
  at::Tensor bias;
  at::Tensor lora_A;
  at::Tensor lora_B;

 private:
  void register_lora();
  int64_t enabled_segment_count() const;

  // Brings weight_bf16_ and bias_bf16_ up to date with weight and bias
  // (see above).
  void RefreshBf16Copies();

  torch::nn::Dropout lora_dropout_{nullptr};
  bool merged_ = false;
  at::Tensor weight_bf16_;
  at::Tensor bias_bf16_;
  // Version counters and storage of the weight and bias the copies were
  // made from.
  int64_t weight_bf16_version_ = -1;
  int64_t bias_bf16_version_ = -1;
  const void* weight_bf16_source_ = nullptr;
  const void* bias_bf16_source_ = nullptr;
};

TORCH_MODULE(LoraLinear);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_LORA_LINEAR_H_
