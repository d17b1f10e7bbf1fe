#include "lora_core/task_data.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "lora_core/assets.h"

namespace lora::core {
namespace {

// Bump when the cached bytes or their meaning change.
constexpr char kCacheFormat[] = "lora-sweep tokenised dataset v1\n";

// Binary writer/reader for the cache: little-endian int64s and
// length-prefixed strings.
class Writer {
 public:
  void Int(int64_t value) {
    bytes_.append(reinterpret_cast<const char*>(&value), sizeof(value));
  }
  void String(const std::string& value) {
    Int(static_cast<int64_t>(value.size()));
    bytes_ += value;
  }
  void Examples(const std::vector<TokenizedExample>& examples) {
    Int(static_cast<int64_t>(examples.size()));
    for (const TokenizedExample& example : examples) {
      Int(example.label);
      Int(example.prompt_length);
      Int(example.group);
      Int(static_cast<int64_t>(example.input_ids.size()));
      bytes_.append(reinterpret_cast<const char*>(example.input_ids.data()),
                    example.input_ids.size() * sizeof(int64_t));
    }
  }
  std::string& bytes() { return bytes_; }

 private:
  std::string bytes_ = kCacheFormat;
};

class Reader {
 public:
  explicit Reader(absl::string_view bytes) : bytes_(bytes) {}
  bool Int(int64_t* value) {
    if (bytes_.size() - offset_ < sizeof(int64_t)) return false;
    std::memcpy(value, bytes_.data() + offset_, sizeof(int64_t));
    offset_ += sizeof(int64_t);
    return true;
  }
  bool String(std::string* value) {
    int64_t size;
    if (!Int(&size) || size < 0 ||
        static_cast<uint64_t>(size) > bytes_.size() - offset_) {
      return false;
    }
    value->assign(bytes_.data() + offset_, size);
    offset_ += size;
    return true;
  }
  bool Examples(std::vector<TokenizedExample>* examples) {
    int64_t count;
    // Each example takes at least four int64s: a damaged count must not
    // make us allocate more than the file could hold.
    if (!Int(&count) || count < 0 ||
        static_cast<uint64_t>(count) > Remaining() / (4 * sizeof(int64_t))) {
      return false;
    }
    examples->resize(count);
    for (TokenizedExample& example : *examples) {
      int64_t size;
      if (!Int(&example.label) || !Int(&example.prompt_length) ||
          !Int(&example.group) || !Int(&size) || size < 0 ||
          static_cast<uint64_t>(size) >
              (bytes_.size() - offset_) / sizeof(int64_t)) {
        return false;
      }
      example.input_ids.resize(size);
      std::memcpy(example.input_ids.data(), bytes_.data() + offset_,
                  size * sizeof(int64_t));
      offset_ += size * sizeof(int64_t);
    }
    return true;
  }
  bool Done() const { return offset_ == bytes_.size(); }
  size_t Remaining() const { return bytes_.size() - offset_; }
  bool SkipHeader() {
    const size_t length = std::strlen(kCacheFormat);
    if (bytes_.substr(0, length) != kCacheFormat) return false;
    offset_ = length;
    return true;
  }

 private:
  absl::string_view bytes_;
  size_t offset_ = 0;
};

std::string Serialize(const TaskData& data) {
  Writer writer;
  writer.Examples(data.train);
  writer.Examples(data.validation);
  writer.Int(static_cast<int64_t>(data.validation_references.size()));
  for (const E2eExample& example : data.validation_references) {
    writer.String(example.meaning_representation);
    writer.Int(static_cast<int64_t>(example.references.size()));
    for (const std::string& reference : example.references) {
      writer.String(reference);
    }
  }
  return std::move(writer.bytes());
}

// False for a truncated or foreign file (then the cache is rebuilt).
bool Deserialize(absl::string_view bytes, TaskData* data) {
  Reader reader(bytes);
  int64_t groups;
  if (!reader.SkipHeader() || !reader.Examples(&data->train) ||
      !reader.Examples(&data->validation) || !reader.Int(&groups) ||
      groups < 0 ||
      static_cast<uint64_t>(groups) > reader.Remaining() / sizeof(int64_t)) {
    return false;
  }
  data->validation_references.resize(groups);
  for (E2eExample& example : data->validation_references) {
    int64_t references;
    if (!reader.String(&example.meaning_representation) ||
        !reader.Int(&references) || references < 0 ||
        static_cast<uint64_t>(references) >
            reader.Remaining() / sizeof(int64_t)) {
      return false;
    }
    example.references.resize(references);
    for (std::string& reference : example.references) {
      if (!reader.String(&reference)) return false;
    }
  }
  return reader.Done();
}

// Reads and tokenises without the cache.
absl::StatusOr<TaskData> Build(const TaskDataOptions& options,
                               const std::vector<std::string>& files,
                               const BpeTokenizer& tokenizer) {
  TaskData data;
  switch (options.task) {
    case DataTask::kSst2: {
      LORA_ASSIGN_OR_RETURN(std::vector<LabeledText> train,
                            ReadSst2Tsv(files[0]));
      LORA_ASSIGN_OR_RETURN(std::vector<LabeledText> validation,
                            ReadSst2Tsv(files[1]));
      data.train = TokenizeLabeled(train, tokenizer, options.max_seq_len);
      data.validation =
          TokenizeLabeled(validation, tokenizer, options.max_seq_len);
      break;
    }
    case DataTask::kPolarity: {
      LORA_ASSIGN_OR_RETURN(std::vector<LabeledText> rows,
                            ReadPolarityCsv(files[0]));
      LabeledSplits splits = SplitPolarity(rows);
      data.train =
          TokenizeLabeled(splits.train, tokenizer, options.max_seq_len);
      data.validation =
          TokenizeLabeled(splits.validation, tokenizer, options.max_seq_len);
      break;
    }
    case DataTask::kText: {
      std::vector<std::string> documents;
      for (const std::string& file : files) {
        LORA_ASSIGN_OR_RETURN(std::vector<std::string> more,
                              ReadCorpusDocuments(file));
        documents.insert(documents.end(), more.begin(), more.end());
      }
      std::vector<std::vector<int64_t>> blocks =
          PackLanguageModelBlocks(documents, tokenizer, options.max_seq_len);
      const int64_t every = std::max<int64_t>(options.text_validation_every, 2);
      for (size_t i = 0; i < blocks.size(); ++i) {
        TokenizedExample example;
        example.input_ids = std::move(blocks[i]);
        (static_cast<int64_t>(i) % every == every - 1 ? data.validation
                                                      : data.train)
            .push_back(std::move(example));
      }
      break;
    }
    case DataTask::kE2e: {
      std::vector<E2eExample> train, validation;
      if (files.empty()) {
        // One draw, split by position, so the two sets share no MR.
        std::vector<E2eExample> all =
            GenerateE2e(options.e2e_train_mrs + options.e2e_validation_mrs,
                        options.e2e_seed);
        validation.assign(
            all.begin() + std::min<size_t>(all.size(), options.e2e_train_mrs),
            all.end());
        all.resize(std::min<size_t>(all.size(), options.e2e_train_mrs));
        train = std::move(all);
      } else {
        LORA_ASSIGN_OR_RETURN(train, ReadE2eCsv(files[0]));
        LORA_ASSIGN_OR_RETURN(validation, ReadE2eCsv(files[1]));
      }
      data.train = TokenizeE2e(train, tokenizer, options.max_seq_len);
      data.validation = TokenizeE2e(validation, tokenizer, options.max_seq_len);
      data.validation_references = std::move(validation);
      break;
    }
  }
  if (data.train.empty() || data.validation.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        DataTaskName(options.task), ": the data gives ", data.train.size(),
        " training and ", data.validation.size(),
        " validation examples; both must be non-empty (is max_seq_len ",
        options.max_seq_len, " larger than the corpus?)"));
  }
  return data;
}

absl::StatusOr<std::vector<std::string>> SourceFiles(
    const TaskDataOptions& options) {
  const std::string& dir = options.data_dir;
  switch (options.task) {
    case DataTask::kSst2:
      if (dir.empty()) {
        return absl::InvalidArgumentError(
            "sst2: data_dir must name a GLUE SST-2 folder (train.tsv, "
            "dev.tsv)");
      }
      return std::vector<std::string>{dir + "/train.tsv", dir + "/dev.tsv"};
    case DataTask::kPolarity: {
      if (!dir.empty()) {
        return std::vector<std::string>{dir + "/pang_lee_sentences.csv"};
      }
      LORA_ASSIGN_OR_RETURN(std::string path,
                            AssetPath("polarity/pang_lee_sentences.csv"));
      return std::vector<std::string>{path};
    }
    case DataTask::kText: {
      if (!options.corpus_files.empty()) return options.corpus_files;
      LORA_ASSIGN_OR_RETURN(std::string moby,
                            AssetPath("moby_dick/moby_dick.txt"));
      LORA_ASSIGN_OR_RETURN(std::string reviews,
                            AssetPath("polarity/pang_lee_reviews.csv"));
      return std::vector<std::string>{moby, reviews};
    }
    case DataTask::kE2e:
      if (dir.empty()) return std::vector<std::string>{};
      return std::vector<std::string>{dir + "/trainset.csv",
                                      dir + "/devset.csv"};
  }
  return std::vector<std::string>{};
}

}  // namespace

absl::StatusOr<DataTask> ParseDataTask(const std::string& name) {
  for (DataTask task : {DataTask::kSst2, DataTask::kPolarity, DataTask::kText,
                        DataTask::kE2e}) {
    if (DataTaskName(task) == name) return task;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "task: expected one of sst2, polarity, text, e2e; got \"", name, "\""));
}

std::string DataTaskName(DataTask task) {
  switch (task) {
    case DataTask::kSst2:
      return "sst2";
    case DataTask::kPolarity:
      return "polarity";
    case DataTask::kText:
      return "text";
    case DataTask::kE2e:
      return "e2e";
  }
  return "";
}

std::string DefaultDatasetCacheDirectory() {
  if (const char* cache = std::getenv("LORA_SWEEP_CACHE");
      cache != nullptr && *cache != '\0') {
    return absl::StrCat(cache, "/datasets");
  }
  const char* home = std::getenv("HOME");
  return absl::StrCat(home != nullptr ? home : "",
                      "/.cache/lora-sweep/datasets");
}

absl::StatusOr<TaskData> LoadTaskData(const TaskDataOptions& options,
                                      const BpeTokenizer& tokenizer) {
  LORA_ASSIGN_OR_RETURN(std::vector<std::string> files, SourceFiles(options));
  Sha256 key;
  key.Update(kCacheFormat);
  key.Update(absl::StrCat(DataTaskName(options.task), "|",
                          tokenizer.fingerprint(), "|", options.max_seq_len,
                          "|", options.text_validation_every, "|",
                          options.e2e_train_mrs, "|",
                          options.e2e_validation_mrs, "|", options.e2e_seed));
  for (const std::string& file : files) {
    LORA_ASSIGN_OR_RETURN(std::string hash, Sha256FileHex(file));
    key.Update("|" + hash);
  }
  const std::string cache_key = key.FinishHex();
  const std::string cache_path =
      options.cache_dir.empty() ? ""
                                : options.cache_dir + "/" + cache_key + ".bin";
  if (!cache_path.empty()) {
    absl::StatusOr<std::string> cached = ReadFile(cache_path);
    TaskData data;
    if (cached.ok() && Deserialize(*cached, &data)) {
      data.cache_key = cache_key;
      data.from_cache = true;
      return data;
    }
  }
  LORA_ASSIGN_OR_RETURN(TaskData data, Build(options, files, tokenizer));
  data.cache_key = cache_key;
  if (!cache_path.empty()) {
    std::error_code error;
    std::filesystem::create_directories(options.cache_dir, error);
    // A cache that cannot be written only costs time next run.
    if (!error) WriteFileAtomically(cache_path, Serialize(data)).IgnoreError();
  }
  return data;
}

}  // namespace lora::core
