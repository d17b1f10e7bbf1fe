// Learning-rate schedule and the dynamic loss scaler for fp16 training.
#ifndef LORA_SWEEP_LORA_CORE_OPTIMIZATION_H_
#define LORA_SWEEP_LORA_CORE_OPTIMIZATION_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace lora::core {

// Hugging Face's linear schedule with warmup: the factor rises linearly from
// 0 to 1 over `warmup_steps`, then falls linearly to 0 at `total_steps`.
// `step` counts optimizer steps taken before this one (0-based).
double LinearWarmupDecayFactor(int64_t step, int64_t warmup_steps,
                               int64_t total_steps);

// Loss scaling for float16 training, as torch.cuda.amp.GradScaler: the loss
// is multiplied by `scale` before backward; before clipping and the step the
// gradients are divided by it and checked; a step with an inf or NaN
// gradient is skipped and the scale halved; after `growth_interval` clean
// steps in a row the scale doubles. Not thread-safe.
class DynamicLossScaler {
 public:
  struct Options {
    double init_scale = 65536.0;
    double growth_factor = 2.0;
    double backoff_factor = 0.5;
    int64_t growth_interval = 2000;
  };
  struct State {
    double scale = 65536.0;
    // Clean steps since the last change of scale.
    int64_t growth_tracker = 0;
  };

  DynamicLossScaler() : DynamicLossScaler(Options()) {}
  explicit DynamicLossScaler(Options options);

  at::Tensor ScaleLoss(const at::Tensor& loss) const;

  // Divides every defined gradient of `parameters` by the scale, in place.
  // Returns true when any gradient holds an inf or NaN (then the caller
  // skips the optimizer step).
  bool UnscaleGradients(const std::vector<at::Tensor>& parameters) const;

  // Records the outcome of a step attempt and adjusts the scale.
  void Update(bool found_inf);

  double scale() const { return state_.scale; }
  const State& state() const { return state_; }
  void set_state(const State& state) { state_ = state; }

 private:
  Options options_;
  State state_;
};

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_OPTIMIZATION_H_
