#include "lora_core/model_tokenizer.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "lora_core/assets.h"

namespace lora::core {
namespace {

bool IsFile(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

std::string ModelName(const ModelConfig& config) {
  return config.name.empty() ? ArchitectureName(config.architecture)
                             : config.name;
}

}  // namespace

absl::Status CheckTokenizerMatchesModel(const BpeTokenizer& tokenizer,
                                        const ModelConfig& config) {
  const std::string expected = config.architecture == Architecture::kGpt2
                                   ? std::string("gpt2")
                                   : config.vocabulary;
  if (tokenizer.vocabulary() != expected) {
    return absl::FailedPreconditionError(absl::StrCat(
        "tokenizer vocabulary \"", tokenizer.vocabulary(),
        "\" does not match model ", ModelName(config),
        ", whose embeddings use "
        "the \"",
        expected,
        "\" vocabulary: the same id would mean another "
        "token",
        expected == kRealRobertaVocabulary
            ? " (real roberta weights need the real roberta vocab.json and "
              "merges.txt beside them)"
            : ""));
  }
  if (tokenizer.vocab_size() > config.vocab_size) {
    return absl::FailedPreconditionError(absl::StrCat(
        "tokenizer has ", tokenizer.vocab_size(), " ids but model ",
        ModelName(config), " has only ", config.vocab_size, " embeddings"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<BpeTokenizer>> LoadTokenizerForModel(
    const ModelConfig& config, const std::string& checkpoint_dir) {
  std::unique_ptr<BpeTokenizer> tokenizer;
  const std::string vocab = checkpoint_dir + "/vocab.json";
  const std::string merges = checkpoint_dir + "/merges.txt";
  if (!checkpoint_dir.empty() && IsFile(vocab) && IsFile(merges)) {
    if (config.architecture == Architecture::kGpt2) {
      LORA_ASSIGN_OR_RETURN(tokenizer, BpeTokenizer::LoadGpt2(vocab, merges));
    } else {
      // A real roberta vocab.json, or one SaveVocabulary wrote for the
      // derived id space: both carry their special tokens.
      LORA_ASSIGN_OR_RETURN(tokenizer, BpeTokenizer::LoadRoberta(
                                           vocab, merges, config.vocabulary));
    }
  } else {
    if (config.architecture == Architecture::kRoberta &&
        config.vocabulary != kGpt2DerivedVocabulary) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model ", ModelName(config),
          " uses the real roberta vocabulary, which cannot be derived "
          "offline: put its vocab.json and merges.txt in the checkpoint "
          "folder",
          checkpoint_dir.empty() ? "" : " " + checkpoint_dir));
    }
    LORA_ASSIGN_OR_RETURN(std::string encoder, AssetPath("gpt2/encoder.json"));
    LORA_ASSIGN_OR_RETURN(std::string bpe, AssetPath("gpt2/vocab.bpe"));
    if (config.architecture == Architecture::kGpt2) {
      LORA_ASSIGN_OR_RETURN(tokenizer, BpeTokenizer::LoadGpt2(encoder, bpe));
    } else {
      LORA_ASSIGN_OR_RETURN(
          tokenizer, BpeTokenizer::LoadRobertaDerivedFromGpt2(encoder, bpe));
    }
  }
  LORA_RETURN_IF_ERROR(CheckTokenizerMatchesModel(*tokenizer, config));
  return tokenizer;
}

}  // namespace lora::core
