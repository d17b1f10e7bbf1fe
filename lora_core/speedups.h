// Switches for the training-speed measures of the LoRA core, so that a
// benchmark can measure what each one buys (bench/train_step_compare.sh).
// All are on unless named in the environment variable
// LORA_CORE_DISABLE_SPEEDUPS (comma-separated, or "all"), read once:
//
//   frozen_bf16_weights  frozen layers under bf16 autocast multiply with a
//                        kept bf16 copy of their weight (lora_linear.h)
//   inplace_lora_add     the LoRA update is added in place (lora_linear.h)
//   fast_dropout         dropout masks from 16-bit lanes (transformer_ops.h)
//   shared_bf16_input    one bf16 copy of the hidden state for the query,
//                        key and value projections (roberta.cc)
//
// Thread-safe. Results are identical either way except for fast_dropout
// (other masks, p rounded to 1/65536) and shared_bf16_input (gradient sums
// of the hidden state in bf16).
#ifndef LORA_SWEEP_LORA_CORE_SPEEDUPS_H_
#define LORA_SWEEP_LORA_CORE_SPEEDUPS_H_

#include <string_view>

namespace lora::core {

// True unless `name` (or "all") is listed in LORA_CORE_DISABLE_SPEEDUPS.
bool SpeedupEnabled(std::string_view name);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_SPEEDUPS_H_
