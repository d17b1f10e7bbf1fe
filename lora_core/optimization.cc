#include "lora_core/optimization.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace lora::core {

double LinearWarmupDecayFactor(int64_t step, int64_t warmup_steps,
                               int64_t total_steps) {
  if (step < warmup_steps) {
    return static_cast<double>(step) / std::max<int64_t>(1, warmup_steps);
  }
  return std::max(0.0, static_cast<double>(total_steps - step) /
                           std::max<int64_t>(1, total_steps - warmup_steps));
}

DynamicLossScaler::DynamicLossScaler(Options options) : options_(options) {
  state_.scale = options.init_scale;
}

at::Tensor DynamicLossScaler::ScaleLoss(const at::Tensor& loss) const {
  return loss * state_.scale;
}

bool DynamicLossScaler::UnscaleGradients(
    const std::vector<at::Tensor>& parameters) const {
  bool found_inf = false;
  const double inverse = 1.0 / state_.scale;
  at::NoGradGuard no_grad;
  for (const at::Tensor& parameter : parameters) {
    at::Tensor grad = parameter.grad();
    if (!grad.defined()) continue;
    grad.mul_(inverse);
    if (!at::isfinite(grad).all().item<bool>()) found_inf = true;
  }
  return found_inf;
}

void DynamicLossScaler::Update(bool found_inf) {
  if (found_inf) {
    state_.scale *= options_.backoff_factor;
    state_.growth_tracker = 0;
    return;
  }
  if (++state_.growth_tracker >= options_.growth_interval) {
    state_.scale *= options_.growth_factor;
    state_.growth_tracker = 0;
  }
}

}  // namespace lora::core
