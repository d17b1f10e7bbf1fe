#include "lora_core/bpe_tokenizer.h"

#include <re2/re2.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/file_util.h"
#include "base/json_util.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "lora_core/utf8.h"

namespace lora::core {
namespace {

using Json = nlohmann::json;

// Entries kept in the per-piece cache before it is cleared.
constexpr size_t kMaxCacheEntries = 200'000;

enum class CharKind { kLetter, kNumber, kSpace, kOther };

CharKind Classify(char32_t cp) {
  if (cp == kInvalidUtf8Byte) return CharKind::kOther;
  if (cp < 0x80) {
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) {
      return CharKind::kLetter;
    }
    if (cp >= '0' && cp <= '9') return CharKind::kNumber;
    if (IsUnicodeWhitespace(cp)) return CharKind::kSpace;
    return CharKind::kOther;
  }
  if (IsUnicodeWhitespace(cp)) return CharKind::kSpace;
  static const RE2* const letter = new RE2("\\p{L}");
  static const RE2* const number = new RE2("\\p{N}");
  const std::string utf8 = EncodeUtf8(cp);
  if (RE2::FullMatch(utf8, *letter)) return CharKind::kLetter;
  if (RE2::FullMatch(utf8, *number)) return CharKind::kNumber;
  return CharKind::kOther;
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the
// rest to U+0100 onwards in byte order.
void BuildByteMapping(std::string (&byte_to_symbol)[256],
                      absl::flat_hash_map<std::string, uint8_t>& reverse) {
  auto printable = [](int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) ||
           (b >= 0xAE && b <= 0xFF);
  };
  int next = 0;
  for (int b = 0; b < 256; ++b) {
    const char32_t cp = printable(b) ? b : 256 + next++;
    byte_to_symbol[b] = EncodeUtf8(cp);
    reverse[byte_to_symbol[b]] = static_cast<uint8_t>(b);
  }
}

absl::StatusOr<Json> ReadJsonObject(const std::string& path) {
  LORA_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  if (JsonNestingDepth(text) > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": expected a flat JSON object of token ids"));
  }
  Json json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a JSON object of token ids"));
  }
  return json;
}

}  // namespace

bool IsUnicodeWhitespace(char32_t cp) {
  switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

std::vector<std::string> Gpt2PreTokenize(absl::string_view text) {
  const std::vector<CodePoint> cps = DecodeUtf8(text);
  const size_t n = cps.size();
  std::vector<CharKind> kinds(n);
  for (size_t i = 0; i < n; ++i) kinds[i] = Classify(cps[i].value);
  auto piece = [&](size_t begin, size_t end) {
    const size_t from = cps[begin].offset;
    const size_t to = end < n ? cps[end].offset : text.size();
    return std::string(text.substr(from, to - from));
  };
  std::vector<std::string> pieces;
  size_t i = 0;
  while (i < n) {
    // 's|'t|'re|'ve|'m|'ll|'d
    if (cps[i].value == '\'' && i + 1 < n) {
      const char32_t a = cps[i + 1].value;
      const char32_t b = i + 2 < n ? cps[i + 2].value : 0;
      size_t length = 0;
      if (a == 's' || a == 't' || a == 'm' || a == 'd') {
        length = 2;
      } else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') ||
                 (a == 'l' && b == 'l')) {
        length = 3;
      }
      if (length > 0) {
        pieces.push_back(piece(i, i + length));
        i += length;
        continue;
      }
    }
    //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+  (the optional space is
    // U+0020 only, and is taken only if the run follows it).
    bool matched = false;
    for (CharKind kind :
         {CharKind::kLetter, CharKind::kNumber, CharKind::kOther}) {
      size_t start = i;
      if (cps[i].value == ' ' && i + 1 < n && kinds[i + 1] == kind) {
        start = i + 1;
      }
      if (kinds[start] != kind) continue;
      size_t end = start;
      while (end < n && kinds[end] == kind) ++end;
      pieces.push_back(piece(i, end));
      i = end;
      matched = true;
      break;
    }
    if (matched) continue;
    // \s+(?!\S) | \s+ : a whitespace run keeps its last character for the
    // next piece when a non-space follows (the lookahead backtracks by one).
    size_t end = i;
    while (end < n && kinds[end] == CharKind::kSpace) ++end;
    if (end < n && end - i >= 2) --end;
    pieces.push_back(piece(i, end));
    i = end;
  }
  return pieces;
}

absl::Status BpeTokenizer::LoadMerges(const std::string& path) {
  LORA_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  int64_t rank = 0;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_number == 1 && line[0] == '#')) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
    if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", line_number,
          ": expected two symbols separated by one space, got \"", line, "\""));
    }
    if (merge_ranks_.emplace(std::string(line), rank).second) {
      merges_.emplace_back(line);
      ++rank;
    }
  }
  if (merge_ranks_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no merges"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::LoadGpt2(
    const std::string& encoder_json, const std::string& vocab_bpe) {
  std::unique_ptr<BpeTokenizer> tokenizer(new BpeTokenizer());
  BuildByteMapping(tokenizer->byte_to_symbol_, tokenizer->symbol_to_byte_);
  LORA_ASSIGN_OR_RETURN(Json encoder, ReadJsonObject(encoder_json));
  LORA_ASSIGN_OR_RETURN(std::string encoder_hash, Sha256FileHex(encoder_json));
  LORA_ASSIGN_OR_RETURN(std::string merges_hash, Sha256FileHex(vocab_bpe));
  int64_t max_id = -1;
  for (auto it = encoder.begin(); it != encoder.end(); ++it) {
    // Ids index a table: bound them by the number of tokens, so a hostile
    // file cannot make us allocate an absurd table.
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() >= static_cast<int64_t>(encoder.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          encoder_json, ": token \"", it.key(), "\" has id ",
          JsonExcerpt(it.value()), "; ids must be 0 .. ", encoder.size() - 1));
    }
    max_id = std::max(max_id, it.value().get<int64_t>());
    tokenizer->token_to_id_[it.key()] = it.value().get<int64_t>();
  }
  tokenizer->id_to_token_.resize(max_id + 1);
  std::vector<bool> seen(max_id + 1, false);
  for (const auto& [token, id] : tokenizer->token_to_id_) {
    if (seen[id]) {
      return absl::InvalidArgumentError(absl::StrCat(
          encoder_json, ": id ", id, " is given to more than one token"));
    }
    seen[id] = true;
    tokenizer->id_to_token_[id] = token;
  }
  LORA_RETURN_IF_ERROR(tokenizer->LoadMerges(vocab_bpe));
  auto eos = tokenizer->token_to_id_.find("<|endoftext|>");
  if (eos == tokenizer->token_to_id_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(encoder_json, ": no <|endoftext|> token"));
  }
  tokenizer->mode_ = Mode::kGpt2;
  tokenizer->vocabulary_ = "gpt2";
  tokenizer->fingerprint_ = encoder_hash + merges_hash;
  tokenizer->vocab_size_ = max_id + 1;
  tokenizer->bos_id_ = tokenizer->eos_id_ = tokenizer->pad_id_ =
      tokenizer->unk_id_ = eos->second;
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::LoadRoberta(
    const std::string& vocab_json, const std::string& merges_txt,
    const std::string& vocabulary) {
  LORA_ASSIGN_OR_RETURN(std::unique_ptr<BpeTokenizer> tokenizer,
                        LoadGpt2(vocab_json, merges_txt));
  auto find = [&](const char* name) -> absl::StatusOr<int64_t> {
    auto it = tokenizer->token_to_id_.find(name);
    if (it == tokenizer->token_to_id_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(vocab_json, ": special token ", name, " is missing"));
    }
    return it->second;
  };
  tokenizer->mode_ = Mode::kRoberta;
  tokenizer->vocabulary_ = vocabulary;
  tokenizer->fingerprint_ = Sha256Hex(vocabulary + tokenizer->fingerprint_);
  LORA_ASSIGN_OR_RETURN(tokenizer->bos_id_, find("<s>"));
  LORA_ASSIGN_OR_RETURN(tokenizer->pad_id_, find("<pad>"));
  LORA_ASSIGN_OR_RETURN(tokenizer->eos_id_, find("</s>"));
  LORA_ASSIGN_OR_RETURN(tokenizer->unk_id_, find("<unk>"));
  LORA_ASSIGN_OR_RETURN(tokenizer->mask_id_, find("<mask>"));
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<BpeTokenizer>>
BpeTokenizer::LoadRobertaDerivedFromGpt2(const std::string& encoder_json,
                                         const std::string& vocab_bpe) {
  LORA_ASSIGN_OR_RETURN(std::unique_ptr<BpeTokenizer> tokenizer,
                        LoadGpt2(encoder_json, vocab_bpe));
  std::vector<std::string> tokens = {"<s>", "<pad>", "</s>", "<unk>"};
  for (const std::string& token : tokenizer->id_to_token_) {
    tokens.push_back(token);
  }
  tokenizer->mask_id_ = static_cast<int64_t>(tokens.size());
  tokens.push_back("<mask>");
  tokenizer->token_to_id_.clear();
  for (size_t id = 0; id < tokens.size(); ++id) {
    tokenizer->token_to_id_[tokens[id]] = static_cast<int64_t>(id);
  }
  tokenizer->id_to_token_ = std::move(tokens);
  tokenizer->mode_ = Mode::kRoberta;
  tokenizer->vocabulary_ = "gpt2-derived";
  tokenizer->fingerprint_ = Sha256Hex("gpt2-derived" + tokenizer->fingerprint_);
  tokenizer->bos_id_ = 0;
  tokenizer->pad_id_ = 1;
  tokenizer->eos_id_ = 2;
  tokenizer->unk_id_ = 3;
  tokenizer->vocab_size_ = static_cast<int64_t>(tokenizer->id_to_token_.size());
  return tokenizer;
}

absl::Status BpeTokenizer::SaveVocabulary(const std::string& directory) const {
  Json vocab = Json::object();
  for (size_t id = 0; id < id_to_token_.size(); ++id) {
    vocab[id_to_token_[id]] = static_cast<int64_t>(id);
  }
  std::string merges = "#version: 0.2\n";
  for (const std::string& merge : merges_) merges += merge + "\n";
  LORA_RETURN_IF_ERROR(
      WriteFileAtomically(directory + "/vocab.json", vocab.dump() + "\n"));
  return WriteFileAtomically(directory + "/merges.txt", merges);
}

std::vector<std::string> BpeTokenizer::Bpe(const std::string& mapped) const {
  std::vector<std::string> word;
  for (const CodePoint& cp : DecodeUtf8(mapped)) {
    word.push_back(mapped.substr(cp.offset, cp.length));
  }
  std::string key;
  while (word.size() > 1) {
    int64_t best_rank = std::numeric_limits<int64_t>::max();
    size_t best = 0;
    for (size_t k = 0; k + 1 < word.size(); ++k) {
      key.assign(word[k]).append(" ").append(word[k + 1]);
      auto it = merge_ranks_.find(key);
      if (it != merge_ranks_.end() && it->second < best_rank) {
        best_rank = it->second;
        best = k;
      }
    }
    if (best_rank == std::numeric_limits<int64_t>::max()) break;
    const std::string first = word[best], second = word[best + 1];
    std::vector<std::string> merged;
    merged.reserve(word.size());
    for (size_t k = 0; k < word.size();) {
      if (k + 1 < word.size() && word[k] == first && word[k + 1] == second) {
        merged.push_back(first + second);
        k += 2;
      } else {
        merged.push_back(std::move(word[k]));
        k += 1;
      }
    }
    word = std::move(merged);
  }
  return word;
}

void BpeTokenizer::EncodePiece(absl::string_view piece,
                               std::vector<int64_t>* ids) const {
  const std::string key(piece);
  {
    absl::MutexLock lock(&cache_mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::string mapped;
  for (unsigned char byte : piece) mapped += byte_to_symbol_[byte];
  std::vector<int64_t> piece_ids;
  for (const std::string& token : Bpe(mapped)) {
    auto it = token_to_id_.find(token);
    if (it != token_to_id_.end()) {
      piece_ids.push_back(it->second);
    } else if (unk_id_ >= 0) {
      piece_ids.push_back(unk_id_);
    }
  }
  ids->insert(ids->end(), piece_ids.begin(), piece_ids.end());
  absl::MutexLock lock(&cache_mu_);
  if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  cache_.emplace(key, std::move(piece_ids));
}

std::vector<int64_t> BpeTokenizer::Encode(absl::string_view text) const {
  std::vector<int64_t> ids;
  for (const std::string& piece : Gpt2PreTokenize(text)) {
    EncodePiece(piece, &ids);
  }
  return ids;
}

bool BpeTokenizer::IsSpecial(int64_t id) const {
  return id == bos_id_ || id == eos_id_ || id == pad_id_ || id == unk_id_ ||
         (mask_id_ >= 0 && id == mask_id_);
}

std::string BpeTokenizer::Decode(absl::Span<const int64_t> ids,
                                 bool skip_special_tokens) const {
  std::string out;
  for (int64_t id : ids) {
    if (id < 0 || id >= static_cast<int64_t>(id_to_token_.size())) continue;
    const std::string& token = id_to_token_[id];
    if (IsSpecial(id)) {
      if (!skip_special_tokens) out += token;
      continue;
    }
    for (const CodePoint& cp : DecodeUtf8(token)) {
      auto it = symbol_to_byte_.find(token.substr(cp.offset, cp.length));
      if (it != symbol_to_byte_.end())
        out.push_back(static_cast<char>(it->second));
    }
  }
  return out;
}

void BpeTokenizer::Finish(EncodedText* encoded, int64_t pad_to_length) const {
  encoded->attention_mask.assign(encoded->input_ids.size(), 1);
  while (static_cast<int64_t>(encoded->input_ids.size()) < pad_to_length) {
    encoded->input_ids.push_back(pad_id_);
    encoded->attention_mask.push_back(0);
  }
}

EncodedText BpeTokenizer::EncodeForModel(absl::string_view text,
                                         int64_t max_length,
                                         int64_t pad_to_length) const {
  EncodedText encoded;
  std::vector<int64_t> ids = Encode(text);
  if (mode_ == Mode::kRoberta) {
    const int64_t room = std::max<int64_t>(max_length - 2, 0);
    if (static_cast<int64_t>(ids.size()) > room) ids.resize(room);
    encoded.input_ids.push_back(bos_id_);
    encoded.input_ids.insert(encoded.input_ids.end(), ids.begin(), ids.end());
    encoded.input_ids.push_back(eos_id_);
  } else {
    if (static_cast<int64_t>(ids.size()) > max_length) ids.resize(max_length);
    encoded.input_ids = std::move(ids);
  }
  Finish(&encoded, pad_to_length);
  return encoded;
}

EncodedText BpeTokenizer::EncodeForModel(absl::string_view text,
                                         absl::string_view pair,
                                         int64_t max_length,
                                         int64_t pad_to_length) const {
  std::vector<int64_t> first = Encode(text), second = Encode(pair);
  const int64_t specials = mode_ == Mode::kRoberta ? 4 : 0;
  const int64_t room = std::max<int64_t>(max_length - specials, 0);
  // Longest first, as Hugging Face's "longest_first": drop from the longer
  // sequence until both fit, from the second on a tie.
  while (static_cast<int64_t>(first.size() + second.size()) > room) {
    if (first.size() > second.size()) {
      first.pop_back();
    } else {
      second.pop_back();
    }
  }
  EncodedText encoded;
  std::vector<int64_t>& ids = encoded.input_ids;
  if (mode_ == Mode::kRoberta) ids.push_back(bos_id_);
  ids.insert(ids.end(), first.begin(), first.end());
  if (mode_ == Mode::kRoberta) {
    ids.push_back(eos_id_);
    ids.push_back(eos_id_);
  }
  ids.insert(ids.end(), second.begin(), second.end());
  if (mode_ == Mode::kRoberta) ids.push_back(eos_id_);
  Finish(&encoded, pad_to_length);
  return encoded;
}

}  // namespace lora::core
