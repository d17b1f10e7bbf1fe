// The tokenizer that belongs to a model, and the check that a tokenizer and
// a model's embeddings agree on what the ids mean. Torch-free.
#ifndef LORA_SWEEP_LORA_CORE_MODEL_TOKENIZER_H_
#define LORA_SWEEP_LORA_CORE_MODEL_TOKENIZER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lora_core/bpe_tokenizer.h"
#include "lora_core/model_config.h"

namespace lora::core {

// Loads the tokenizer for `config`: from `checkpoint_dir` when it holds
// vocab.json and merges.txt (Hugging Face's files; for RoBERTa a vocab.json
// with its special tokens, in the id space the config records), otherwise
// from the
// offline GPT-2 assets — GPT-2's own vocabulary for GPT-2 models, the
// GPT-2-derived RoBERTa vocabulary for RoBERTa configs that record it. A real
// RoBERTa vocabulary cannot be derived offline: FailedPrecondition saying so.
// Then CheckTokenizerMatchesModel.
absl::StatusOr<std::unique_ptr<BpeTokenizer>> LoadTokenizerForModel(
    const ModelConfig& config, const std::string& checkpoint_dir = "");

// FailedPrecondition when the tokenizer's ids do not mean what the model's
// embeddings were trained on: a GPT-2-derived RoBERTa vocabulary with real
// roberta weights (or the reverse), a GPT-2 vocabulary on RoBERTa, or a
// tokenizer with more ids than the model has embeddings.
absl::Status CheckTokenizerMatchesModel(const BpeTokenizer& tokenizer,
                                        const ModelConfig& config);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_MODEL_TOKENIZER_H_
