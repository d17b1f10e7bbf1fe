// Text generation with a GPT-2 TaskModel: greedy decoding and beam search
// with a length penalty and no-repeat-n-gram blocking, as the LoRA paper's
// E2E setup uses. No key/value cache: each step runs the model over the
// whole sequence, which is fine for the short E2E outputs.
#ifndef LORA_SWEEP_LORA_CORE_GENERATION_H_
#define LORA_SWEEP_LORA_CORE_GENERATION_H_

#include <cstdint>
#include <vector>

#include "lora_core/task_model.h"

namespace lora::core {

struct GenerationOptions {
  int64_t beam_size = 4;  // 1 = greedy
  // Finished beams are ranked by sum(log p) / length^length_penalty, length
  // counting generated tokens (end-of-text included).
  double length_penalty = 0.9;
  int64_t no_repeat_ngram_size = 4;  // 0 = off
  int64_t max_new_tokens = 64;
  int64_t eos_id = 50256;
};

// The tokens generated after `prompt` (end-of-text not included). The model
// is put in eval mode; gradients are not recorded.
std::vector<int64_t> Generate(TaskModel& model,
                              const std::vector<int64_t>& prompt,
                              const GenerationOptions& options);

// Tokens that would complete an n-gram already present in `sequence`
// (n = `ngram_size`), for blocking.
std::vector<int64_t> BannedNgramTokens(const std::vector<int64_t>& sequence,
                                       int64_t ngram_size);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_GENERATION_H_
