// Corpus BLEU-4 with several references per hypothesis (Papineni et al.,
// 2002), computed exactly as NLTK's corpus_bleu with its default settings
// (uniform weights, no smoothing, closest reference length for the brevity
// penalty, ties to the shorter reference). Torch-free.
#ifndef LORA_SWEEP_LORA_CORE_BLEU_H_
#define LORA_SWEEP_LORA_CORE_BLEU_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace lora::core {

using Tokens = std::vector<std::string>;

// `references[i]` are the references of `hypotheses[i]`; sizes must match.
// Returns a value in [0, 1].
double CorpusBleu(const std::vector<std::vector<Tokens>>& references,
                  const std::vector<Tokens>& hypotheses, int max_order = 4);

// The tokenisation used for E2E scoring: lowercase ASCII, punctuation split
// from words, split on whitespace.
Tokens BleuTokenize(absl::string_view text);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_BLEU_H_
