// The datasets the LoRA experiments train on, read and tokenised without
// LibTorch:
//
//  - GLUE SST-2: a folder with train.tsv and dev.tsv, header
//    "sentence<TAB>label", labels 0/1;
//  - Pang & Lee sentence polarity: a CSV of "label","text" rows with labels
//    1 / -1, split deterministically into 3,000 train and 1,000 validation
//    rows: row i (0-based, in file order) is validation when i % 4 == 3. The
//    file holds 2,000 positive then 2,000 negative rows, so both splits are
//    balanced;
//  - a plain-text language-model corpus (Moby-Dick, Pang & Lee full reviews)
//    tokenised as one stream, documents separated by the end-of-text token,
//    and packed into fixed-length blocks;
//  - E2E NLG: the real E2E CSV ("mr,ref", several references per meaning
//    representation), or an offline generator of meaning representations
//    over the eight E2E slots, each rendered by several templates so that
//    every MR has several references.
//
// Malformed input is an error naming the file, the line and the problem
// (bad label, wrong column count, invalid UTF-8, an empty file), never a
// silent skip.
#ifndef LORA_SWEEP_LORA_CORE_TEXT_DATASETS_H_
#define LORA_SWEEP_LORA_CORE_TEXT_DATASETS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lora_core/bpe_tokenizer.h"

namespace lora::core {

// One CSV record with the line it starts on (1-based).
struct CsvRecord {
  int line = 0;
  std::vector<std::string> fields;
};

// RFC 4180 CSV: comma-separated, fields optionally quoted, "" inside quotes
// for a quote, newlines allowed inside quotes; a leading UTF-8 BOM is
// skipped. InvalidArgument naming `source` and the line for an unterminated
// quote, text after a closing quote, or invalid UTF-8.
absl::StatusOr<std::vector<CsvRecord>> ParseCsv(absl::string_view text,
                                                const std::string& source);

// InvalidArgument naming `source` and the line of the first byte that is not
// valid UTF-8.
absl::Status CheckUtf8(absl::string_view text, const std::string& source);

struct LabeledText {
  std::string text;
  int64_t label = 0;
  int line = 0;  // where it came from, for messages
};

// GLUE SST-2 train.tsv / dev.tsv.
absl::StatusOr<std::vector<LabeledText>> ReadSst2Tsv(const std::string& path);

// Pang & Lee polarity CSV; label 1 -> 1 (positive), -1 -> 0 (negative).
absl::StatusOr<std::vector<LabeledText>> ReadPolarityCsv(
    const std::string& path);

struct LabeledSplits {
  std::vector<LabeledText> train;
  std::vector<LabeledText> validation;
};

// The documented polarity split (i % 4 == 3 is validation).
LabeledSplits SplitPolarity(const std::vector<LabeledText>& rows);

// Documents of a language-model corpus: for a .csv file, the text of every
// "label","text" row in the Pang & Lee format (validated as ReadPolarityCsv
// does); for anything else, the whole file as one document.
absl::StatusOr<std::vector<std::string>> ReadCorpusDocuments(
    const std::string& path);

// Tokenises `documents` as one stream (eos between documents) and cuts it
// into blocks of `block_size` tokens; the remainder is dropped.
std::vector<std::vector<int64_t>> PackLanguageModelBlocks(
    const std::vector<std::string>& documents, const BpeTokenizer& tokenizer,
    int64_t block_size);

// A meaning representation with its references.
struct E2eExample {
  // E2E's format: "name[The Eagle], eatType[coffee shop], ...".
  std::string meaning_representation;
  std::vector<std::string> references;
};

// The real E2E CSV (header "mr,ref"): rows grouped by MR in first-seen
// order.
absl::StatusOr<std::vector<E2eExample>> ReadE2eCsv(const std::string& path);

// `count` distinct MRs drawn with `seed` (name and eatType always present,
// the other six slots each with probability 1/2, as in E2E), each rendered
// by `references_per_mr` different templates. Deterministic for a seed.
std::vector<E2eExample> GenerateE2e(int count, uint64_t seed,
                                    int references_per_mr = 3);

// A token sequence ready for batching.
struct TokenizedExample {
  std::vector<int64_t> input_ids;
  // Classification label; -1 for language modelling.
  int64_t label = -1;
  // Language modelling: the first prompt_length tokens are context, not
  // scored (E2E's meaning representation).
  int64_t prompt_length = 0;
  // E2E: index of the MR, for grouping references in BLEU.
  int64_t group = -1;
};

// Classification inputs: special tokens, truncation to `max_length`.
std::vector<TokenizedExample> TokenizeLabeled(
    const std::vector<LabeledText>& rows, const BpeTokenizer& tokenizer,
    int64_t max_length);

// E2E for causal LM training: "<mr> =>" as the unscored prompt, then
// " <reference><eos>", one example per reference, truncated to max_length.
std::vector<TokenizedExample> TokenizeE2e(
    const std::vector<E2eExample>& examples, const BpeTokenizer& tokenizer,
    int64_t max_length);

// The prompt text of an MR, as TokenizeE2e uses it (for generation).
std::string E2ePrompt(const std::string& meaning_representation);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_TEXT_DATASETS_H_
