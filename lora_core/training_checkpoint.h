// Full training checkpoints for exact resume: the trainable weights (LoRA and
// head, or everything for full fine-tuning), AdamW's state, the loss scaler,
// the position in training (step, epoch, batches of the epoch consumed) and
// the CPU random generator (dropout). One safetensors file written
// atomically, so a kill during a write leaves the previous checkpoint intact
// and never one that loads wrong.
#ifndef LORA_SWEEP_LORA_CORE_TRAINING_CHECKPOINT_H_
#define LORA_SWEEP_LORA_CORE_TRAINING_CHECKPOINT_H_

#include <torch/optim/adamw.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lora_core/optimization.h"
#include "lora_core/task_model.h"

namespace lora::core {

struct TrainingProgress {
  int64_t step = 0;            // optimizer steps taken
  int64_t epoch = 0;           // current epoch, 0-based
  int64_t batch_in_epoch = 0;  // batches of `epoch` already consumed
  double best_metric = 0.0;
  int64_t best_epoch = 0;  // 1-based; 0 = no evaluation yet
  int64_t evaluations_without_improvement = 0;
  int64_t tokens_seen = 0;
  // Sum of the step losses of the current epoch and their count (for the
  // epoch's mean train_loss across a resume).
  double epoch_loss_sum = 0.0;
  int64_t epoch_steps = 0;
  double train_seconds = 0.0;  // wall time spent training so far
  DynamicLossScaler::State scaler;
  // Identifies the configuration; resuming under another one is refused.
  std::string config_fingerprint;
};

// Writes `path` atomically.
absl::Status SaveTrainingCheckpoint(const std::string& path,
                                    const TaskModel& model,
                                    const torch::optim::AdamW& optimizer,
                                    const TrainingProgress& progress);

// Restores weights, optimizer state, progress and the CPU generator.
// NotFound if there is no checkpoint; FailedPrecondition if it was written
// under another configuration (fingerprints differ) or does not fit the
// model; errors of the file otherwise. The model and optimizer are left
// unchanged on error.
absl::StatusOr<TrainingProgress> LoadTrainingCheckpoint(
    const std::string& path, TaskModel& model, torch::optim::AdamW& optimizer,
    const std::string& expected_fingerprint);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_TRAINING_CHECKPOINT_H_
