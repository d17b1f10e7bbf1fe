// ScopedCpuAutocast: bf16 autocast on the CPU for a scope, the way
// torch.autocast("cpu", dtype=torch.bfloat16) works in Python (LibTorch
// 1.13's C++ API has no RAII guard for it). Restores the previous state on
// exit and clears autocast's cast cache when the outermost scope ends.
// Disabled (constructed with false), it does nothing. Per thread, as
// autocast's state is.
//
//   {
//     ScopedCpuAutocast autocast(config.amp == AmpMode::kBf16);
//     output = model->forward(input_ids, attention_mask);
//   }
#ifndef LORA_SWEEP_LORA_CORE_CPU_AUTOCAST_H_
#define LORA_SWEEP_LORA_CORE_CPU_AUTOCAST_H_

#include <ATen/autocast_mode.h>

namespace lora::core {

class ScopedCpuAutocast {
 public:
  explicit ScopedCpuAutocast(bool enabled = true) : enabled_(enabled) {
    if (!enabled_) return;
    previous_enabled_ = at::autocast::is_cpu_enabled();
    previous_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_cpu_enabled(true);
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~ScopedCpuAutocast() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_cpu_enabled(previous_enabled_);
    at::autocast::set_autocast_cpu_dtype(previous_dtype_);
  }
  ScopedCpuAutocast(const ScopedCpuAutocast&) = delete;
  ScopedCpuAutocast& operator=(const ScopedCpuAutocast&) = delete;

 private:
  bool enabled_;
  bool previous_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kBFloat16;
};

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_CPU_AUTOCAST_H_
