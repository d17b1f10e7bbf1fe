// Byte-level BPE as GPT-2 and RoBERTa use it, written here without LibTorch:
//
//  1. pre-tokenisation with GPT-2's pattern
//       's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|
//       ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//     implemented by hand over Unicode code points (RE2 has no lookahead and
//     its \s is ASCII only): letters and numbers are Unicode's L and N
//     categories, whitespace is Unicode's White_Space property, as in the
//     original Python `regex` implementation;
//  2. every piece's UTF-8 bytes mapped to printable characters
//     (bytes_to_unicode);
//  3. merges applied lowest rank first; results cached per piece.
//
// Vocabularies: GPT-2's encoder.json + vocab.bpe; a real RoBERTa vocab.json +
// merges.txt (specials <s> <pad> </s> <unk> <mask> read from it); or, offline,
// a RoBERTa vocabulary derived from GPT-2's files: <s>=0, <pad>=1, </s>=2,
// <unk>=3, GPT-2 id + 4, <mask>=50261 (vocabulary kind "gpt2-derived", whose
// ids differ from real roberta-base's).
//
// Thread-safe: encoding from several threads shares the cache under a lock.
#ifndef LORA_SWEEP_LORA_CORE_BPE_TOKENIZER_H_
#define LORA_SWEEP_LORA_CORE_BPE_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace lora::core {

// Whether a code point is in Unicode's White_Space property (what `\s`
// matches in Python's `regex` module).
bool IsUnicodeWhitespace(char32_t code_point);

// GPT-2's pre-tokenisation: the pieces of `text` in order; their
// concatenation is `text`. Invalid UTF-8 bytes form pieces of their own kind
// ("other"), so nothing is lost.
std::vector<std::string> Gpt2PreTokenize(absl::string_view text);

// Model input for one example or a batch, before tensors.
struct EncodedText {
  std::vector<int64_t> input_ids;
  std::vector<int64_t> attention_mask;  // 1 for tokens, 0 for padding
};

class BpeTokenizer {
 public:
  enum class Mode {
    kGpt2,     // GPT-2 ids; no special tokens added.
    kRoberta,  // <s> A </s> (pairs: <s> A </s></s> B </s>).
  };

  // GPT-2 from encoder.json and vocab.bpe (first line "#version" ignored).
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> LoadGpt2(
      const std::string& encoder_json, const std::string& vocab_bpe);

  // RoBERTa from a vocab.json (with its special tokens) and merges.txt.
  // `vocabulary` names the id space ("roberta" for real roberta files,
  // "gpt2-derived" for files SaveVocabulary wrote from the derived one).
  // InvalidArgument if a special token is missing from the vocabulary.
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> LoadRoberta(
      const std::string& vocab_json, const std::string& merges_txt,
      const std::string& vocabulary = "roberta");

  // RoBERTa with the vocabulary derived from GPT-2's files (see above).
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>>
  LoadRobertaDerivedFromGpt2(const std::string& encoder_json,
                             const std::string& vocab_bpe);

  // Writes `directory`/vocab.json (every token with the id this tokenizer
  // uses, special tokens included) and `directory`/merges.txt, the files
  // Hugging Face's tokenizers read. Files are written atomically.
  absl::Status SaveVocabulary(const std::string& directory) const;

  // Token ids of `text` without special tokens.
  std::vector<int64_t> Encode(absl::string_view text) const;

  // The text of `ids` (bytes exactly as encoded; may be invalid UTF-8 if the
  // ids split a character). Special tokens are dropped with
  // `skip_special_tokens`, else written as their names. Unknown ids are
  // skipped.
  std::string Decode(absl::Span<const int64_t> ids,
                     bool skip_special_tokens = true) const;

  // Model input for one text (and an optional second text of a pair):
  // special tokens per mode, truncated to `max_length` tokens (longest
  // sequence first for pairs), then padded to `pad_to_length` if larger.
  // GPT-2 pads with `pad_id()` (its eos) and masks the padding.
  EncodedText EncodeForModel(absl::string_view text, int64_t max_length,
                             int64_t pad_to_length = 0) const;
  EncodedText EncodeForModel(absl::string_view text, absl::string_view pair,
                             int64_t max_length,
                             int64_t pad_to_length = 0) const;

  Mode mode() const { return mode_; }
  // "gpt2", "roberta" or "gpt2-derived" (see model_config.h).
  const std::string& vocabulary() const { return vocabulary_; }
  int64_t vocab_size() const { return vocab_size_; }
  int64_t bos_id() const { return bos_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t pad_id() const { return pad_id_; }
  int64_t unk_id() const { return unk_id_; }
  // -1 without a mask token (GPT-2).
  int64_t mask_id() const { return mask_id_; }
  bool IsSpecial(int64_t id) const;

  // sha256 of the vocabulary kind and both files' bytes: identifies the
  // tokenizer in dataset cache keys.
  const std::string& fingerprint() const { return fingerprint_; }

 private:
  BpeTokenizer() = default;
  absl::Status LoadMerges(const std::string& path);
  // The ids of one pre-tokenised piece (cached).
  void EncodePiece(absl::string_view piece, std::vector<int64_t>* ids) const;
  std::vector<std::string> Bpe(const std::string& mapped) const;
  // Marks every token of `encoded` as attended, then pads it with pad_id()
  // (attention 0) up to `pad_to_length`.
  void Finish(EncodedText* encoded, int64_t pad_to_length) const;

  Mode mode_ = Mode::kGpt2;
  std::string vocabulary_;
  std::string fingerprint_;
  absl::flat_hash_map<std::string, int64_t> token_to_id_;
  std::vector<std::string> id_to_token_;
  // "left right" -> rank, and the merges in rank order.
  absl::flat_hash_map<std::string, int64_t> merge_ranks_;
  std::vector<std::string> merges_;
  std::string byte_to_symbol_[256];
  absl::flat_hash_map<std::string, uint8_t> symbol_to_byte_;
  int64_t vocab_size_ = 0;
  int64_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1, unk_id_ = -1, mask_id_ = -1;

  mutable absl::Mutex cache_mu_;
  mutable absl::flat_hash_map<std::string, std::vector<int64_t>> cache_
      ABSL_GUARDED_BY(cache_mu_);
};

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_BPE_TOKENIZER_H_
