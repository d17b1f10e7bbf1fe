// The configuration of one training job (one resolved sweep point), as
// `lora-train train CONFIG` reads it from YAML or JSON. Torch-free: the
// coordinator writes these for workers.
//
// Example (every key optional except model and task):
//
//   model: roberta-tiny          # built-in config name or HF checkpoint dir
//   task: polarity               # sst2 | polarity | text | e2e
//   data_dir: ""                 # task folder; empty = offline assets
//   head: linear_pooled          # see model_layout.h; default by task
//   lora: {rank: 4, alpha: 16, dropout: 0.0, target_modules: [query, value],
//          use_rslora: false, bias: none}
//   trainable: lora              # lora | full | head_only
//   epochs: 3
//   batch_size: 32
//   grad_accum_steps: 1
//   lr: 5.0e-4
//   weight_decay: 0.0
//   warmup_ratio: 0.06
//   max_grad_norm: 1.0
//   label_smoothing: 0.0
//   max_seq_len: 64
//   amp: bf16                    # off | bf16 | fp16 (fp16: CUDA only)
//   seed: 0
//   threads: 2
//   device: cpu
//   metric: {name: val_accuracy, goal: maximize}
//   early_stopping_patience: 0   # evaluations without improvement; 0 = off
//   output_dir: runs/r4
//   resume: true                 # continue from output_dir's checkpoint
//   checkpoint_every_steps: 0    # plus one at every epoch end
//   max_steps: 0                 # train this many optimizer steps at most
//                                # (the schedule ends there); 0 = epochs
//   max_train_examples: 0        # train on N examples of the training
//                                # split (a fixed random subset, the same
//                                # for every seed): low-data studies; 0 = all
//   world_size: 1                # data-parallel ranks (CPU processes over
//                                # Gloo); batch_size is the global batch
//                                # and must be divisible by it. See below.
//
// Data parallel (world_size N > 1): N lora-train processes (ranks) each
// train on a contiguous 1/N of every global batch and all-reduce the
// trainable gradients. Like torchrun, the rank and the rendezvous come from
// the environment: RANK (0..N-1), WORLD_SIZE (must equal world_size),
// MASTER_ADDR and MASTER_PORT (rank 0 serves the c10d TCPStore there). With
// RANK unset, `lora-train train` launches the N ranks itself on 127.0.0.1.
// `threads` is per rank. Rank 0 alone writes to output_dir.
#ifndef LORA_SWEEP_LORA_CORE_TRAIN_CONFIG_H_
#define LORA_SWEEP_LORA_CORE_TRAIN_CONFIG_H_

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lora_core/model_layout.h"
#include "lora_core/task_data.h"

namespace lora::core {

enum class AmpMode { kOff, kBf16, kFp16 };
std::string AmpModeName(AmpMode mode);

struct GenerationConfig {
  // 1 = greedy.
  int64_t beam_size = 4;
  // Scores are divided by length^length_penalty (GNMT-style, as Hugging
  // Face's generate).
  double length_penalty = 0.9;
  // No n-gram of this size appears twice in an output; 0 = off.
  int64_t no_repeat_ngram_size = 4;
  int64_t max_new_tokens = 64;
  // Validation MRs scored with BLEU after training (0 = all).
  int64_t eval_examples = 0;
};

struct TrainConfig {
  std::string model;
  DataTask task = DataTask::kPolarity;
  std::string data_dir;
  std::vector<std::string> corpus_files;
  HeadKind head = HeadKind::kLinearOnPooler;
  int64_t num_labels = 2;
  LoraSpec lora;
  std::string lora_bias = "none";
  TrainableSet trainable = TrainableSet::kLora;
  int64_t epochs = 3;
  int64_t batch_size = 32;
  int64_t eval_batch_size = 64;
  int64_t grad_accum_steps = 1;
  double lr = 5e-4;
  double weight_decay = 0.0;
  double warmup_ratio = 0.06;
  double max_grad_norm = 1.0;
  double label_smoothing = 0.0;
  int64_t max_seq_len = 64;
  AmpMode amp = AmpMode::kOff;
  uint64_t seed = 0;
  int64_t threads = 2;
  std::string device = "cpu";
  std::string metric_name;  // default by task
  bool metric_maximize = true;
  int64_t early_stopping_patience = 0;
  std::string output_dir;
  bool resume = true;
  int64_t checkpoint_every_steps = 0;
  int64_t max_steps = 0;
  // Train on a fixed random N of the training split; 0 = all of them.
  int64_t max_train_examples = 0;
  // Data-parallel ranks; batch_size % world_size == 0.
  int64_t world_size = 1;
  // Interrupt after this many optimizer steps, with a checkpoint and results
  // "status": "stopped" (lora-train --stop-after-steps); 0 = never. Not part
  // of the job: resuming continues as if nothing happened.
  int64_t stop_after_steps = 0;
  int64_t log_every_steps = 10;
  // Generated E2E data.
  int64_t e2e_train_mrs = 2000;
  int64_t e2e_validation_mrs = 200;
  uint64_t e2e_seed = 2017;
  GenerationConfig generation;
  // Tokenised-dataset cache; empty = DefaultDatasetCacheDirectory().
  std::string cache_dir;
};

// Parses YAML or JSON text. `source` names the file in errors:
// "job.yaml:7: lora.rank: expected an integer >= 1, got 0". Rejects unknown
// keys, wrong types, out-of-range values, fp16 without CUDA, a head that does
// not fit the task, a batch_size not divisible by world_size, and a missing
// model or task.
absl::StatusOr<TrainConfig> ParseTrainConfig(const std::string& text,
                                             const std::string& source);

// The same for an already parsed document. Errors carry the line of each
// node's position in its source, so a document assembled from nodes of
// another file (a sweep spec's point) reports that file's lines.
absl::StatusOr<TrainConfig> ParseTrainConfigNode(const YAML::Node& root,
                                                 const std::string& source);

// Reads and parses a config file.
absl::StatusOr<TrainConfig> LoadTrainConfig(const std::string& path);

// The config as YAML that ParseTrainConfig reads back to an equal config.
std::string TrainConfigToYaml(const TrainConfig& config);

// The ModelSpec the config describes.
ModelSpec ToModelSpec(const TrainConfig& config);

// The data options the config describes.
TaskDataOptions ToTaskDataOptions(const TrainConfig& config);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_TRAIN_CONFIG_H_
