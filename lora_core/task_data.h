// One interface over the datasets of text_datasets.h: a task name and a
// source give tokenised train and validation examples, cached on disk under
// a key made of the content of every input (data files, tokenizer files) and
// every setting that shapes the result, so a second run reads the cache and
// a changed file is never served stale. Torch-free.
#ifndef LORA_SWEEP_LORA_CORE_TASK_DATA_H_
#define LORA_SWEEP_LORA_CORE_TASK_DATA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lora_core/bpe_tokenizer.h"
#include "lora_core/text_datasets.h"

namespace lora::core {

enum class DataTask {
  kSst2,      // data_dir holds train.tsv and dev.tsv
  kPolarity,  // data_dir holds pang_lee_sentences.csv (default: assets)
  kText,      // corpus_files (default: Moby-Dick and Pang & Lee reviews)
  kE2e,       // data_dir holds trainset.csv and devset.csv, or generated
};

// "sst2", "polarity", "text", "e2e".
absl::StatusOr<DataTask> ParseDataTask(const std::string& name);
std::string DataTaskName(DataTask task);

struct TaskDataOptions {
  DataTask task = DataTask::kPolarity;
  // Task folder; empty uses the offline assets (polarity, text) or the E2E
  // generator.
  std::string data_dir;
  // kText: the corpus files; empty uses the assets.
  std::vector<std::string> corpus_files;
  // Tokens per example (classification, E2E) or per block (text).
  int64_t max_seq_len = 64;
  // kText: every n-th block goes to validation.
  int64_t text_validation_every = 10;
  // Generated E2E: MRs per split and the generator seed.
  int e2e_train_mrs = 2000;
  int e2e_validation_mrs = 200;
  uint64_t e2e_seed = 2017;
  // Where tokenised datasets are cached; empty disables the cache.
  std::string cache_dir;
};

struct TaskData {
  std::vector<TokenizedExample> train;
  std::vector<TokenizedExample> validation;
  // E2E validation MRs with all their references (for BLEU); empty
  // otherwise. validation examples' `group` indexes it.
  std::vector<E2eExample> validation_references;
  // The cache key, and whether the result came from the cache.
  std::string cache_key;
  bool from_cache = false;
};

// Reads, splits and tokenises. Errors of the readers (file:line: problem),
// NotFound for missing files or assets.
absl::StatusOr<TaskData> LoadTaskData(const TaskDataOptions& options,
                                      const BpeTokenizer& tokenizer);

// Default cache folder: $LORA_SWEEP_CACHE/datasets, else
// $HOME/.cache/lora-sweep/datasets.
std::string DefaultDatasetCacheDirectory();

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_TASK_DATA_H_
