// The trainer: one LoRA (or full / head-only) fine-tuning job from a
// TrainConfig, end to end — model and tokenizer, data, AdamW with warmup and
// linear decay, gradient clipping and accumulation, bf16 autocast on CPU,
// evaluation every epoch with best-epoch tracking and early stopping, exact
// resume from its own checkpoints, and the exported adapter.
//
// Files in config.output_dir:
//   config.yaml                    the resolved configuration
//   metrics.jsonl                  one JSON object per line: {"type":"step",
//                                  step, epoch, loss, lr, grad_norm,
//                                  tokens_per_second, loss_scale} and
//                                  {"type":"epoch", epoch, step, train_loss,
//                                  val_* metrics}
//   checkpoint/training_state.safetensors   for exact resume
//   adapter/                       PEFT adapter (+ head) and
//                                  lora_sweep_run.yaml, for LoRA runs
//   model/                         the full HF checkpoint, for other runs
//   results.json                   final and best metrics, parameter counts,
//                                  wall time and its time_breakdown (setup,
//                                  steps, evaluation, checkpoint and other
//                                  seconds; from building the Trainer to
//                                  the end, in this process only: a resumed
//                                  run counts from the resume, and loading
//                                  the program itself is not in it)
//
// Data parallel (config.world_size N > 1, one Trainer per rank process,
// joined by a GradientReducer): every rank collates each global batch of
// batch_size examples, trains on its contiguous rows (ShardRows), weights its
// shard's loss by its share of the batch's scored units (examples, or target
// tokens for language modelling) and all-reduces (sums) the trainable
// gradients before clipping, so every rank steps with the gradient of the
// global batch's mean loss, as one process would (up to float rounding),
// and the ranks' weights stay bitwise identical. Evaluation is split across
// ranks by batch and the per-batch sums are all-reduced: every rank sees the
// same metrics (bit for bit what one process computes for those weights),
// so early stopping agrees. Rank 0 alone writes to output_dir; every rank
// resumes from rank 0's checkpoint.
// Dropout masks then come from a generator reseeded every step from (seed,
// step, rank): independent across ranks, exact on resume, but not the
// masks a single process would draw.
//
// Deterministic for a seed, thread count and world size. Not thread-safe.
#ifndef LORA_SWEEP_LORA_CORE_TRAINER_H_
#define LORA_SWEEP_LORA_CORE_TRAINER_H_

#include <torch/optim/adamw.h>

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "lora_core/bpe_tokenizer.h"
#include "lora_core/collate.h"
#include "lora_core/gradient_reducer.h"
#include "lora_core/optimization.h"
#include "lora_core/task_data.h"
#include "lora_core/task_model.h"
#include "lora_core/train_config.h"
#include "lora_core/training_checkpoint.h"

namespace lora::core {

// Receives every record written to metrics.jsonl, as it is written (for
// progress display and, in workers, streaming to the coordinator).
using MetricsObserver = std::function<void(const nlohmann::json& record)>;

// Names of the files the trainer writes.
inline constexpr char kRunConfigFile[] = "lora_sweep_run.yaml";
inline constexpr char kCheckpointPath[] =
    "checkpoint/training_state.safetensors";

class Trainer {
 public:
  // Sets threads, seeds the generator, builds the model (loading a
  // checkpoint folder when config.model is one), the tokenizer, the data and
  // the optimizer. Errors name the config key or file at fault. `reducer`
  // joins this rank to the others of a data-parallel job; its world size
  // must equal config.world_size (InvalidArgument otherwise). Null means
  // one process (NoOpGradientReducer).
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(
      const TrainConfig& config,
      std::unique_ptr<GradientReducer> reducer = nullptr);

  // The same, but with the weights of an exported run (adapter/ with its
  // PEFT adapter, or model/ with a full checkpoint) instead of fresh LoRA,
  // configured by the lora_sweep_run.yaml in it. `threads` > 0 overrides
  // the run's thread count.
  static absl::StatusOr<std::unique_ptr<Trainer>> CreateFromExport(
      const std::string& directory, int64_t threads = 0);

  // Called with every record on rank 0; other ranks record nothing.
  void set_observer(MetricsObserver observer) {
    observer_ = std::move(observer);
  }

  // When set, Run() ends by writing this rank's trainable parameters to
  // `<directory>/trainable_rank<k>.safetensors` (outside output_dir), so
  // tests can compare the ranks of a data-parallel job.
  void set_weights_dump_directory(std::string directory) {
    weights_dump_directory_ = std::move(directory);
  }

  // Trains (resuming from output_dir's checkpoint when config.resume and one
  // exists), evaluates every epoch, exports, and returns results.json's
  // content. With config.stop_after_steps, or after RequestStop(), it stops
  // at the next optimizer step boundary and saves a checkpoint ("status":
  // "stopped"). After every checkpoint it writes a metrics record
  // {"type": "checkpoint", "step", "epoch"}: the checkpoint folder is then
  // complete (workers upload it on seeing the record). Collective in a
  // data-parallel job: a stop requested on any rank stops all of them at the
  // same step; ranks other than 0 return {"status", "rank", "steps"} only.
  // Unavailable when a peer rank fails.
  absl::StatusOr<nlohmann::json> Run();

  // Asks every running Trainer to checkpoint and stop at its next step
  // boundary. Async-signal-safe: lora-train calls it from its SIGTERM
  // handler, so a worker draining its jobs loses no progress.
  static void RequestStop();

  // Validation metrics of the model as it is now: classification val_loss
  // and val_accuracy; language modelling val_loss and val_perplexity.
  // Collective in a data-parallel job (each rank scores a share of the
  // batches); fails only when a peer rank does.
  absl::StatusOr<std::map<std::string, double>> Evaluate();

  // E2E: generates for the validation meaning representations and scores
  // corpus BLEU against all their references ("val_bleu").
  double EvaluateBleu();

  TaskModel& model() { return *model_; }
  const BpeTokenizer& tokenizer() const { return *tokenizer_; }
  const TrainConfig& config() const { return config_; }

 private:
  Trainer() = default;
  static absl::StatusOr<std::unique_ptr<Trainer>> Build(
      const TrainConfig& config, const std::string& exported_directory,
      std::unique_ptr<GradientReducer> reducer);
  at::Tensor Loss(const TaskModelOutput& output, const TensorBatch& batch,
                  bool training);
  // Examples (classification) or target tokens (language modelling) that
  // the batch's mean loss averages over.
  int64_t ScoredUnits(const TensorBatch& batch) const;
  void Record(nlohmann::json record);
  absl::Status Export(const nlohmann::json& results);
  // Data parallel: fails unless every rank is at the same step of the same
  // configuration, then gives every rank rank 0's trainable weights.
  absl::Status SynchronizeRanks(const TrainingProgress& progress);
  // Data parallel: sums the trainable gradients over the ranks (a gradient
  // no rank has stays undefined) along with `step_loss` and `stop`.
  absl::Status ReduceStep(const std::vector<at::Tensor>& parameters,
                          double* step_loss, bool* stop);
  absl::Status DumpWeights() const;

  TrainConfig config_;
  ModelConfig model_config_;
  std::shared_ptr<TaskModel> model_;
  std::unique_ptr<BpeTokenizer> tokenizer_;
  TaskData data_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  DynamicLossScaler scaler_;
  std::string fingerprint_;
  std::string load_report_;
  MetricsObserver observer_;
  std::unique_ptr<GradientReducer> reducer_;
  std::string weights_dump_directory_;
  // How long Build took (model, tokenizer, data, optimizer): the first part
  // of results.json's time_breakdown.
  double setup_seconds_ = 0.0;
};

// Rebuilds a finished run from its exported adapter/ (or model/) folder and
// the lora_sweep_run.yaml in it, and evaluates it on the run's validation
// data: the same metrics the run recorded (bit for bit, whatever the run's
// world_size). `threads` > 0 overrides the run's.
absl::StatusOr<std::map<std::string, double>> EvaluateExportedRun(
    const std::string& directory, int64_t threads = 0);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_TRAINER_H_
