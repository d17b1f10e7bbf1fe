#include "lora_core/trainer.h"

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "lora_core/batching.h"
#include "lora_core/bleu.h"
#include "lora_core/cpu_autocast.h"
#include "lora_core/distributed_env.h"
#include "lora_core/generation.h"
#include "lora_core/hf_checkpoint.h"
#include "lora_core/model_tokenizer.h"
#include "lora_core/peft_adapter.h"
#include "lora_core/splitmix64.h"
#include "lora_core/tensor_io.h"
#include "lora_core/torch_runtime.h"

namespace lora::core {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Shuffle seed of the max_train_examples subset (fixed: every run of a
// study trains on the same examples).
constexpr uint64_t kTrainSubsetSeed = 0x5EED5EEDULL;

bool ExcludedFromWeightDecay(const std::string& name) {
  return absl::EndsWith(name, "bias") || absl::StrContains(name, "LayerNorm") ||
         absl::StrContains(name, "layer_norm") ||
         absl::StrContains(name, ".ln_");
}

// The fingerprint covers everything that changes what is trained, not where
// or how often it is reported (output_dir, resume, stop_after_steps, threads,
// logging and checkpoint frequency) nor how many ranks share the work: a
// checkpoint resumes under another world_size.
std::string Fingerprint(TrainConfig config) {
  config.world_size = 1;
  config.output_dir.clear();
  config.resume = false;
  config.stop_after_steps = 0;
  config.threads = 1;
  config.log_every_steps = 1;
  config.checkpoint_every_steps = 0;
  config.cache_dir.clear();
  config.generation = GenerationConfig();
  return Sha256Hex(TrainConfigToYaml(config));
}

MlmMasking MlmMaskingFor(const BpeTokenizer& tokenizer) {
  MlmMasking masking;
  masking.mask_id = tokenizer.mask_id();
  masking.vocab_size = tokenizer.vocab_size();
  masking.special_ids = {tokenizer.bos_id(), tokenizer.eos_id(),
                         tokenizer.pad_id(), tokenizer.unk_id(),
                         tokenizer.mask_id()};
  return masking;
}

// Masked-LM batches score only their masked positions.
at::Tensor MaskedPositions(const TensorBatch& batch) {
  if (!batch.mlm_labels.defined()) return {};
  return batch.mlm_labels.ne(kIgnoreIndex);
}

// The targets at MaskedPositions, in the same order; undefined otherwise.
at::Tensor MaskedLmTargets(const TensorBatch& batch) {
  if (!batch.mlm_labels.defined()) return {};
  return batch.mlm_labels.index({MaskedPositions(batch)});
}

// Set by Trainer::RequestStop (from a signal handler).
std::atomic<bool> stop_signalled{false};
static_assert(std::atomic<bool>::is_always_lock_free);

uint64_t MaskSeed(uint64_t seed, int64_t epoch, int64_t batch) {
  return seed * 0x9E3779B97F4A7C15ULL ^
         (static_cast<uint64_t>(epoch + 2) << 32) ^
         static_cast<uint64_t>(batch);
}

bool Improved(double value, double best, bool maximize, bool first) {
  if (first) return true;
  return maximize ? value > best : value < best;
}

// Data parallel: the generator (dropout) is reseeded before every step from
// (seed, step, rank), so ranks draw independent masks and a resumed run
// draws the masks of an uninterrupted one without saving every rank's
// generator.
uint64_t RankStepSeed(uint64_t seed, int64_t step, int rank) {
  SplitMix64 mix(seed ^ (static_cast<uint64_t>(step) * 0xD1B54A32D192ED03ULL) ^
                 (static_cast<uint64_t>(rank + 1) << 48));
  return mix.Next();
}

}  // namespace

void Trainer::RequestStop() {
  stop_signalled.store(true, std::memory_order_relaxed);
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(
    const TrainConfig& config, std::unique_ptr<GradientReducer> reducer) {
  return Build(config, "", std::move(reducer));
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::CreateFromExport(
    const std::string& directory, int64_t threads) {
  LORA_ASSIGN_OR_RETURN(TrainConfig config,
                        LoadTrainConfig(directory + "/" + kRunConfigFile));
  if (threads > 0) config.threads = threads;
  // Evaluation and generation of an exported run take one process.
  config.world_size = 1;
  return Build(config, directory, nullptr);
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Build(
    const TrainConfig& config, const std::string& exported_directory,
    std::unique_ptr<GradientReducer> reducer) {
  const auto build_start = Clock::now();
  if (reducer == nullptr) reducer = std::make_unique<NoOpGradientReducer>();
  if (reducer->world_size() != config.world_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "world_size: the job has ", config.world_size,
        " ranks but this process joined a group of ", reducer->world_size()));
  }
  if (config.device != "cpu") {
    return absl::FailedPreconditionError(absl::StrCat(
        "device: \"", config.device,
        "\" is not available: this build of lora-train has no CUDA support "
        "(Debian's LibTorch is CPU-only); use device: cpu"));
  }
  std::unique_ptr<Trainer> trainer(new Trainer());
  trainer->config_ = config;
  trainer->reducer_ = std::move(reducer);
  TrainConfig& c = trainer->config_;
  SetTorchThreads(static_cast<int>(c.threads));

  // Model config: a built-in name or a checkpoint folder.
  const bool from_folder = std::filesystem::is_directory(c.model);
  if (from_folder) {
    LORA_ASSIGN_OR_RETURN(trainer->model_config_,
                          LoadModelConfigFromDirectory(c.model));
  } else {
    absl::StatusOr<ModelConfig> builtin = BuiltinModelConfig(c.model);
    if (!builtin.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model: ", builtin.status().message(),
                       ", or a folder with config.json and model.safetensors"));
    }
    trainer->model_config_ = *builtin;
  }
  const ModelConfig& model_config = trainer->model_config_;
  if (c.head == HeadKind::kNone && c.task == DataTask::kText) {
    c.head = model_config.architecture == Architecture::kRoberta
                 ? HeadKind::kRobertaMaskedLm
                 : HeadKind::kGpt2LanguageModel;
  }
  if (!HeadFitsArchitecture(c.head, model_config.architecture)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "head: \"", HeadKindName(c.head), "\" does not fit ",
        ArchitectureName(model_config.architecture), " model ", c.model));
  }
  if (c.max_seq_len > LongestUsableSequence(model_config)) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_seq_len: ", c.max_seq_len,
                     " exceeds the longest sequence ", model_config.name,
                     " takes (", LongestUsableSequence(model_config), ")"));
  }

  // The model, seeded: fresh parameters draw from the generator in a fixed
  // order (backbone, head, LoRA A).
  at::manual_seed(c.seed);
  ModelSpec spec = ToModelSpec(c);
  if (!exported_directory.empty()) spec.lora = LoraSpec();
  if (from_folder) {
    LORA_ASSIGN_OR_RETURN(PretrainedModel loaded,
                          LoadPretrained(c.model, spec));
    trainer->model_ = loaded.model;
    trainer->load_report_ = loaded.report.ToString();
  } else {
    LORA_ASSIGN_OR_RETURN(trainer->model_,
                          TaskModel::Create(model_config, spec));
  }
  if (!exported_directory.empty()) {
    if (std::filesystem::exists(exported_directory + "/adapter_config.json")) {
      LORA_ASSIGN_OR_RETURN(PeftAdapter adapter,
                            ReadPeftAdapter(exported_directory));
      LORA_RETURN_IF_ERROR(ApplyPeftAdapter(adapter, *trainer->model_));
    } else {
      LORA_ASSIGN_OR_RETURN(
          NamedTensors weights,
          LoadSafetensors(exported_directory + "/model.safetensors"));
      LORA_RETURN_IF_ERROR(
          LoadStateDict(*trainer->model_, weights, exported_directory)
              .status());
    }
  }

  LORA_ASSIGN_OR_RETURN(
      trainer->tokenizer_,
      LoadTokenizerForModel(model_config, from_folder ? c.model : ""));
  LORA_ASSIGN_OR_RETURN(
      trainer->data_, LoadTaskData(ToTaskDataOptions(c), *trainer->tokenizer_));
  if (c.max_train_examples > 0 &&
      static_cast<int64_t>(trainer->data_.train.size()) >
          c.max_train_examples) {
    // A random subset, the same for every run seed and variant (a fixed
    // shuffle seed), in the split's order: the corpora's files are sorted
    // by label, so the first N alone could hold one class only.
    std::vector<size_t> order(trainer->data_.train.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    SplitMix64(kTrainSubsetSeed).Shuffle(order);
    order.resize(static_cast<size_t>(c.max_train_examples));
    std::sort(order.begin(), order.end());
    std::vector<TokenizedExample> subset;
    subset.reserve(order.size());
    for (size_t i : order) subset.push_back(trainer->data_.train[i]);
    trainer->data_.train = std::move(subset);
  }

  // AdamW: no weight decay on biases and LayerNorm weights.
  std::vector<at::Tensor> decay, no_decay;
  for (auto& [name, parameter] : trainer->model_->TrainableParameters()) {
    (ExcludedFromWeightDecay(name) ? no_decay : decay).push_back(parameter);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  auto options = [&](double weight_decay) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(c.lr).weight_decay(weight_decay));
  };
  if (!decay.empty()) groups.emplace_back(decay, options(c.weight_decay));
  if (!no_decay.empty()) groups.emplace_back(no_decay, options(0.0));
  if (groups.empty()) {
    return absl::InvalidArgumentError(
        "trainable: the configuration leaves no parameter to train");
  }
  trainer->optimizer_ = std::make_unique<torch::optim::AdamW>(
      groups, torch::optim::AdamWOptions(c.lr));
  trainer->fingerprint_ = Fingerprint(c);
  trainer->setup_seconds_ = SecondsSince(build_start);
  return trainer;
}

void Trainer::Record(Json record) {
  if (reducer_->rank() != 0) return;
  if (!config_.output_dir.empty()) {
    std::ofstream(config_.output_dir + "/metrics.jsonl", std::ios::app)
        << record.dump() << "\n";
  }
  if (observer_) observer_(record);
}

at::Tensor Trainer::Loss(const TaskModelOutput& output,
                         const TensorBatch& batch, bool training) {
  const at::Tensor logits = output.logits.to(at::kFloat);
  if (config_.task == DataTask::kSst2 || config_.task == DataTask::kPolarity) {
    return at::cross_entropy_loss(logits, batch.labels, {}, at::Reduction::Mean,
                                  kIgnoreIndex,
                                  training ? config_.label_smoothing : 0.0);
  }
  if (batch.mlm_labels.defined()) {
    // Logits exist only at the masked positions (see MaskedPositions).
    return at::cross_entropy_loss(logits, MaskedLmTargets(batch), {},
                                  at::Reduction::Mean, kIgnoreIndex, 0.0);
  }
  return at::cross_entropy_loss(logits.view({-1, logits.size(-1)}),
                                batch.lm_labels.view({-1}), {},
                                at::Reduction::Mean, kIgnoreIndex, 0.0);
}

int64_t Trainer::ScoredUnits(const TensorBatch& batch) const {
  if (config_.task == DataTask::kSst2 || config_.task == DataTask::kPolarity) {
    return batch.input_ids.size(0);
  }
  const at::Tensor& targets =
      batch.mlm_labels.defined() ? batch.mlm_labels : batch.lm_labels;
  return targets.ne(kIgnoreIndex).sum().item<int64_t>();
}

absl::StatusOr<std::map<std::string, double>> Trainer::Evaluate() {
  at::NoGradGuard no_grad;
  model_->eval();
  const bool classification =
      config_.task == DataTask::kSst2 || config_.task == DataTask::kPolarity;
  std::vector<int64_t> lengths;
  for (const TokenizedExample& example : data_.validation) {
    lengths.push_back(static_cast<int64_t>(example.input_ids.size()));
  }
  const bool masked_lm = config_.head == HeadKind::kRobertaMaskedLm;
  const std::vector<std::vector<size_t>> batches =
      EvaluationBatches(lengths, config_.eval_batch_size);
  const int64_t batch_count = static_cast<int64_t>(batches.size());
  // Per batch: loss sum, correct, examples, scored tokens. With N ranks,
  // rank r scores batches r, r + N, ... and leaves zeros elsewhere, so the
  // all-reduced table holds every batch's own numbers exactly (x + 0 = x),
  // and the totals below add up in batch order on every rank: the bits one
  // process gets.
  enum Column { kLossSum, kCorrect, kCount, kScoredTokens };
  at::Tensor sums = at::zeros({batch_count, 4}, at::kDouble);
  auto table = sums.accessor<double, 2>();
  for (int64_t i = 0; i < batch_count; ++i) {
    if (i % reducer_->world_size() != reducer_->rank()) continue;
    TensorBatch batch =
        Collate(data_.validation, batches[i], tokenizer_->pad_id());
    if (masked_lm) {
      // The same masks at every evaluation, so epochs compare.
      ApplyMlmMasking(&batch, MlmMaskingFor(*tokenizer_),
                      MaskSeed(config_.seed, -1, i));
    }
    TaskModelOutput output;
    {
      ScopedCpuAutocast autocast(config_.amp == AmpMode::kBf16);
      output = model_->forward(batch.input_ids, batch.attention_mask,
                               MaskedPositions(batch));
    }
    const at::Tensor logits = output.logits.to(at::kFloat);
    if (classification) {
      table[i][kLossSum] =
          at::cross_entropy_loss(logits, batch.labels, {}, at::Reduction::Sum)
              .item<double>();
      table[i][kCorrect] = static_cast<double>(
          logits.argmax(-1).eq(batch.labels).sum().item<int64_t>());
      table[i][kCount] = static_cast<double>(batch.labels.size(0));
    } else {
      const at::Tensor masked_targets = MaskedLmTargets(batch);
      const at::Tensor targets = masked_targets.defined()
                                     ? masked_targets
                                     : batch.lm_labels.view({-1});
      table[i][kLossSum] =
          at::cross_entropy_loss(logits.view({-1, logits.size(-1)}), targets,
                                 {}, at::Reduction::Sum, kIgnoreIndex)
              .item<double>();
      table[i][kScoredTokens] =
          static_cast<double>(targets.ne(kIgnoreIndex).sum().item<int64_t>());
    }
  }
  LORA_RETURN_IF_ERROR(reducer_->AllReduceSum(sums));
  double loss_sum = 0.0;
  int64_t correct = 0, count = 0, scored_tokens = 0;
  for (int64_t i = 0; i < batch_count; ++i) {
    loss_sum += table[i][kLossSum];
    correct += static_cast<int64_t>(table[i][kCorrect]);
    count += static_cast<int64_t>(table[i][kCount]);
    scored_tokens += static_cast<int64_t>(table[i][kScoredTokens]);
  }
  std::map<std::string, double> metrics;
  if (classification) {
    metrics["val_loss"] = loss_sum / std::max<int64_t>(count, 1);
    metrics["val_accuracy"] =
        static_cast<double>(correct) / std::max<int64_t>(count, 1);
  } else {
    metrics["val_loss"] = loss_sum / std::max<int64_t>(scored_tokens, 1);
    metrics["val_perplexity"] = std::exp(metrics["val_loss"]);
  }
  return metrics;
}

double Trainer::EvaluateBleu() {
  GenerationOptions options;
  options.beam_size = config_.generation.beam_size;
  options.length_penalty = config_.generation.length_penalty;
  options.no_repeat_ngram_size = config_.generation.no_repeat_ngram_size;
  options.max_new_tokens = config_.generation.max_new_tokens;
  options.eos_id = tokenizer_->eos_id();
  std::vector<std::vector<Tokens>> references;
  std::vector<Tokens> hypotheses;
  int64_t limit = config_.generation.eval_examples;
  for (const E2eExample& example : data_.validation_references) {
    if (limit > 0 && static_cast<int64_t>(hypotheses.size()) >= limit) break;
    const std::vector<int64_t> prompt =
        tokenizer_->Encode(E2ePrompt(example.meaning_representation));
    ScopedCpuAutocast autocast(config_.amp == AmpMode::kBf16);
    const std::vector<int64_t> generated = Generate(*model_, prompt, options);
    hypotheses.push_back(BleuTokenize(tokenizer_->Decode(generated)));
    references.emplace_back();
    for (const std::string& reference : example.references) {
      references.back().push_back(BleuTokenize(reference));
    }
  }
  return CorpusBleu(references, hypotheses);
}

absl::StatusOr<Json> Trainer::Run() {
  const TrainConfig& c = config_;
  const auto wall_start = Clock::now();
  const int rank = reducer_->rank();
  const int world_size = reducer_->world_size();
  // Rank 0 writes every output; the other ranks only read the checkpoint.
  const bool lead = rank == 0;
  if (c.output_dir.empty()) {
    return absl::InvalidArgumentError("output_dir: required for training");
  }
  std::error_code error;
  if (lead) {
    std::filesystem::create_directories(c.output_dir + "/checkpoint", error);
    if (error) {
      return absl::InternalError(absl::StrCat(
          "output_dir: cannot create ", c.output_dir, ": ", error.message()));
    }
    LORA_RETURN_IF_ERROR(WriteFileAtomically(c.output_dir + "/config.yaml",
                                             TrainConfigToYaml(c)));
  }
  const std::string checkpoint = c.output_dir + "/" + kCheckpointPath;

  TrainingProgress progress;
  progress.config_fingerprint = fingerprint_;
  progress.scaler = scaler_.state();
  bool resumed = false;
  if (c.resume && std::filesystem::exists(checkpoint)) {
    LORA_ASSIGN_OR_RETURN(
        progress,
        LoadTrainingCheckpoint(checkpoint, *model_, *optimizer_, fingerprint_));
    scaler_.set_state(progress.scaler);
    resumed = true;
  } else if (lead && std::filesystem::exists(c.output_dir + "/metrics.jsonl")) {
    std::filesystem::remove(c.output_dir + "/metrics.jsonl", error);
  }
  // Rank 0 writes no checkpoint before the first step's all-reduce, which
  // every rank reaches only after loading: no rank reads a checkpoint while
  // it is being replaced.
  LORA_RETURN_IF_ERROR(SynchronizeRanks(progress));
  if (!load_report_.empty() && !resumed) {
    Record(Json{{"type", "load_report"}, {"text", load_report_}});
  }
  if (resumed) {
    Record(Json{{"type", "resume"},
                {"step", progress.step},
                {"epoch", progress.epoch + 1}});
  }

  std::vector<int64_t> lengths;
  for (const TokenizedExample& example : data_.train) {
    lengths.push_back(static_cast<int64_t>(example.input_ids.size()));
  }
  const int64_t batches_per_epoch =
      (static_cast<int64_t>(lengths.size()) + c.batch_size - 1) / c.batch_size;
  const int64_t steps_per_epoch =
      (batches_per_epoch + c.grad_accum_steps - 1) / c.grad_accum_steps;
  const int64_t total_steps =
      c.max_steps > 0 ? std::min(steps_per_epoch * c.epochs, c.max_steps)
                      : steps_per_epoch * c.epochs;
  const int64_t warmup_steps =
      static_cast<int64_t>(std::ceil(c.warmup_ratio * total_steps));
  std::vector<at::Tensor> parameters;
  for (auto& [name, parameter] : model_->TrainableParameters()) {
    parameters.push_back(parameter);
  }
  const bool fp16 = c.amp == AmpMode::kFp16;
  const bool bf16 = c.amp == AmpMode::kBf16;

  // Where this run's time went after Build (setup_seconds_): the training
  // steps, the evaluations, the checkpoint writes; the rest is reading the
  // checkpoint on resume, batching, metric lines and the final export.
  double step_seconds = 0.0, evaluation_seconds = 0.0, checkpoint_seconds = 0.0;

  auto save = [&]() -> absl::Status {
    if (!lead) return absl::OkStatus();
    const auto save_start = Clock::now();
    progress.scaler = scaler_.state();
    LORA_RETURN_IF_ERROR(
        SaveTrainingCheckpoint(checkpoint, *model_, *optimizer_, progress));
    checkpoint_seconds += SecondsSince(save_start);
    Record(Json{{"type", "checkpoint"},
                {"step", progress.step},
                {"epoch", progress.epoch + 1}});
    return absl::OkStatus();
  };

  std::map<std::string, double> last_metrics;
  Json history = Json::array();
  bool stopped = false, stopped_early = false;
  auto segment_start = Clock::now();
  while (progress.epoch < c.epochs && progress.step < total_steps) {
    const std::vector<std::vector<size_t>> batches =
        TrainingBatches(lengths, c.batch_size, c.seed, progress.epoch);
    model_->train();
    int64_t b = progress.batch_in_epoch;
    while (b < static_cast<int64_t>(batches.size()) &&
           progress.step < total_steps) {
      const auto step_start = Clock::now();
      const int64_t micro = std::min<int64_t>(
          c.grad_accum_steps, static_cast<int64_t>(batches.size()) - b);
      double step_loss = 0.0;
      int64_t step_tokens = 0;
      if (world_size > 1) {
        at::manual_seed(RankStepSeed(c.seed, progress.step, rank));
      }
      for (int64_t m = 0; m < micro; ++m) {
        // The global batch, collated and masked whole on every rank, so each
        // rank's rows are exactly those rows of the single-process batch.
        TensorBatch batch =
            Collate(data_.train, batches[b + m], tokenizer_->pad_id());
        if (c.head == HeadKind::kRobertaMaskedLm) {
          // Dynamic masks: new every epoch, reproducible on resume.
          ApplyMlmMasking(&batch, MlmMaskingFor(*tokenizer_),
                          MaskSeed(c.seed, progress.epoch, b + m));
        }
        step_tokens += batch.tokens;
        // The loss is a mean over the batch's scored units (examples, or
        // target tokens). Weighting each shard's mean by its share of the
        // units makes the ranks' sum the global batch's mean, exactly, also
        // for shards of unequal size or token count.
        double weight = 1.0;
        if (world_size > 1) {
          const RowRange rows =
              ShardRows(batch.input_ids.size(0), rank, world_size);
          if (rows.empty()) continue;  // a last batch smaller than the world
          const int64_t global_units = ScoredUnits(batch);
          batch = SliceRows(batch, rows.begin, rows.end);
          const int64_t units = ScoredUnits(batch);
          if (units == 0) continue;  // nothing to score, nothing to add
          weight = static_cast<double>(units) / global_units;
        }
        TaskModelOutput output;
        {
          ScopedCpuAutocast autocast(bf16);
          output = model_->forward(batch.input_ids, batch.attention_mask,
                                   MaskedPositions(batch));
        }
        at::Tensor loss = Loss(output, batch, /*training=*/true);
        step_loss += loss.item<double>() * weight / micro;
        at::Tensor scaled = world_size > 1
                                ? loss * (weight / static_cast<double>(micro))
                                : loss / static_cast<double>(micro);
        (fp16 ? scaler_.ScaleLoss(scaled) : scaled).backward();
      }
      b += micro;
      // Every rank stops at the same step: a stop signalled to any of them
      // travels with the gradients.
      bool stop_signal = stop_signalled.load(std::memory_order_relaxed);
      if (world_size > 1) {
        LORA_RETURN_IF_ERROR(ReduceStep(parameters, &step_loss, &stop_signal));
      }
      const double lr = c.lr * LinearWarmupDecayFactor(
                                   progress.step, warmup_steps, total_steps);
      for (auto& group : optimizer_->param_groups()) {
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      }
      const bool found_inf = fp16 && scaler_.UnscaleGradients(parameters);
      const double grad_norm = torch::nn::utils::clip_grad_norm_(
          parameters, c.max_grad_norm > 0
                          ? c.max_grad_norm
                          : std::numeric_limits<double>::infinity());
      if (!found_inf) optimizer_->step();
      if (fp16) scaler_.Update(found_inf);
      optimizer_->zero_grad();
      ++progress.step;
      progress.batch_in_epoch = b;
      progress.tokens_seen += step_tokens;
      progress.epoch_loss_sum += step_loss;
      ++progress.epoch_steps;
      const double seconds = SecondsSince(step_start);
      step_seconds += seconds;
      if (progress.step % c.log_every_steps == 0 ||
          b == static_cast<int64_t>(batches.size()) ||
          progress.step == total_steps) {
        Record(
            Json{{"type", "step"},
                 {"step", progress.step},
                 {"epoch", progress.epoch + 1},
                 {"total_steps", total_steps},
                 {"loss", step_loss},
                 {"lr", lr},
                 {"grad_norm", grad_norm},
                 {"tokens_per_second", step_tokens / std::max(seconds, 1e-9)},
                 {"step_seconds", seconds},
                 {"loss_scale", fp16 ? scaler_.scale() : 1.0},
                 {"skipped", found_inf}});
      }
      const bool stop_requested =
          (c.stop_after_steps > 0 && progress.step >= c.stop_after_steps) ||
          (world_size > 1 ? stop_signal
                          : stop_signalled.load(std::memory_order_relaxed));
      if (stop_requested || (c.checkpoint_every_steps > 0 &&
                             progress.step % c.checkpoint_every_steps == 0)) {
        progress.train_seconds += SecondsSince(segment_start);
        segment_start = Clock::now();
        LORA_RETURN_IF_ERROR(save());
      }
      if (stop_requested) {
        stopped = true;
        break;
      }
    }
    if (stopped) break;

    // End of epoch: evaluate, track the best epoch, checkpoint.
    const auto evaluation_start = Clock::now();
    LORA_ASSIGN_OR_RETURN(last_metrics, Evaluate());
    evaluation_seconds += SecondsSince(evaluation_start);
    const double value = last_metrics.count(c.metric_name)
                             ? last_metrics[c.metric_name]
                             : last_metrics["val_loss"];
    if (Improved(value, progress.best_metric, c.metric_maximize,
                 progress.best_epoch == 0)) {
      progress.best_metric = value;
      progress.best_epoch = progress.epoch + 1;
      progress.evaluations_without_improvement = 0;
    } else {
      ++progress.evaluations_without_improvement;
    }
    Json record = {
        {"type", "epoch"},
        {"epoch", progress.epoch + 1},
        {"step", progress.step},
        {"train_loss",
         progress.epoch_loss_sum / std::max<int64_t>(progress.epoch_steps, 1)}};
    for (const auto& [name, metric] : last_metrics) record[name] = metric;
    Record(record);
    ++progress.epoch;
    progress.batch_in_epoch = 0;
    progress.epoch_loss_sum = 0.0;
    progress.epoch_steps = 0;
    progress.train_seconds += SecondsSince(segment_start);
    segment_start = Clock::now();
    LORA_RETURN_IF_ERROR(save());
    if (c.early_stopping_patience > 0 &&
        progress.evaluations_without_improvement >= c.early_stopping_patience) {
      stopped_early = true;
      break;
    }
  }

  if (!lead) {
    LORA_RETURN_IF_ERROR(DumpWeights());
    return Json{{"status", stopped ? "stopped" : "completed"},
                {"rank", rank},
                {"steps", progress.step}};
  }

  // The epoch history, read back from metrics.jsonl so a resumed run reports
  // every epoch.
  std::ifstream metrics_file(c.output_dir + "/metrics.jsonl");
  std::string line;
  std::map<int64_t, Json> epochs;
  while (std::getline(metrics_file, line)) {
    Json record = Json::parse(line, nullptr, false);
    if (!record.is_discarded() && record.value("type", "") == "epoch") {
      epochs[record["epoch"].get<int64_t>()] = record;
    }
  }
  for (auto& [epoch, record] : epochs) history.push_back(record);

  const ParameterCounts counts = model_->CountModuleParameters();
  Json results = {
      {"status", stopped ? "stopped" : "completed"},
      {"model", c.model},
      {"task", DataTaskName(c.task)},
      {"steps", progress.step},
      {"epochs_completed", progress.epoch},
      {"stopped_early", stopped_early},
      {"metric",
       {{"name", c.metric_name},
        {"goal", c.metric_maximize ? "maximize" : "minimize"}}},
      {"best",
       {{"value", progress.best_metric}, {"epoch", progress.best_epoch}}},
      {"parameters",
       {{"total", counts.total},
        {"trainable", counts.trainable},
        {"lora", counts.lora},
        {"head", counts.head},
        {"base", counts.base}}},
      {"history", history},
      {"train_seconds", progress.train_seconds},
      {"tokens_per_second",
       progress.tokens_seen / std::max(progress.train_seconds, 1e-9)},
  };
  if (world_size > 1) results["world_size"] = world_size;
  if (!stopped) {
    if (!history.empty()) {
      Json final_metrics = history.back();
      for (const char* key : {"type", "epoch", "step"})
        final_metrics.erase(key);
      results["final_metrics"] = final_metrics;
    }
    if (c.task == DataTask::kE2e) {
      const auto generation_start = Clock::now();
      const double bleu = EvaluateBleu();
      evaluation_seconds += SecondsSince(generation_start);
      results["final_metrics"]["val_bleu"] = bleu;
      Record(Json{
          {"type", "generation"}, {"step", progress.step}, {"val_bleu", bleu}});
    }
    LORA_RETURN_IF_ERROR(Export(results));
  }
  results["wall_seconds"] = setup_seconds_ + SecondsSince(wall_start);
  results["time_breakdown"] = {
      {"setup_seconds", setup_seconds_},
      {"steps_seconds", step_seconds},
      {"evaluation_seconds", evaluation_seconds},
      {"checkpoint_seconds", checkpoint_seconds},
      {"other_seconds",
       std::max(0.0, results["wall_seconds"].get<double>() - setup_seconds_ -
                         step_seconds - evaluation_seconds -
                         checkpoint_seconds)}};
  LORA_RETURN_IF_ERROR(WriteFileAtomically(c.output_dir + "/results.json",
                                           results.dump(2) + "\n"));
  LORA_RETURN_IF_ERROR(DumpWeights());
  return results;
}

absl::Status Trainer::SynchronizeRanks(const TrainingProgress& progress) {
  if (reducer_->world_size() == 1) return absl::OkStatus();
  // The configuration (60 bits of its fingerprint) and the position in
  // training: the same on every rank unless they run different jobs or
  // loaded different checkpoints.
  const std::vector<int64_t> position = {
      static_cast<int64_t>(
          std::stoull(fingerprint_.substr(0, 15), nullptr, 16)),
      progress.step, progress.epoch, progress.batch_in_epoch};
  at::Tensor mine = at::tensor(position, at::kLong);
  at::Tensor leader = mine.clone();
  LORA_RETURN_IF_ERROR(reducer_->Broadcast(leader));
  at::Tensor disagreeing = at::tensor(
      std::vector<int64_t>{at::equal(mine, leader) ? 0 : 1}, at::kLong);
  LORA_RETURN_IF_ERROR(reducer_->AllReduceSum(disagreeing));
  if (disagreeing.item<int64_t>() > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "rank ", reducer_->rank(), ": ", disagreeing.item<int64_t>(),
        " rank(s) disagree with rank 0 on the job or its checkpoint (rank 0 "
        "at step ",
        leader[1].item<int64_t>(), ", this rank at step ", position[1],
        mine[0].item<int64_t>() == leader[0].item<int64_t>()
            ? ", same configuration)"
            : ", different configurations)"));
  }
  // Rank 0's weights everywhere, as DistributedDataParallel does: they are
  // equal already when every rank seeded the same build, but this makes it
  // so.
  std::vector<at::Tensor> parameters, pieces;
  for (auto& [name, parameter] : model_->TrainableParameters()) {
    parameters.push_back(parameter);
    pieces.push_back(parameter.detach().reshape({-1}).to(at::kFloat));
  }
  at::Tensor flat = at::cat(pieces);
  LORA_RETURN_IF_ERROR(reducer_->Broadcast(flat));
  at::NoGradGuard no_grad;
  int64_t offset = 0;
  for (at::Tensor& parameter : parameters) {
    const int64_t n = parameter.numel();
    parameter.copy_(flat.slice(0, offset, offset + n).view_as(parameter));
    offset += n;
  }
  return absl::OkStatus();
}

absl::Status Trainer::ReduceStep(const std::vector<at::Tensor>& parameters,
                                 double* step_loss, bool* stop) {
  // Float32 gradients in one flat buffer (one message, as DDP's buckets);
  // float64 loss, stop flag and, per parameter, how many ranks have a
  // gradient for it.
  std::vector<double> totals = {*step_loss, *stop ? 1.0 : 0.0};
  std::vector<at::Tensor> pieces;
  for (const at::Tensor& parameter : parameters) {
    const at::Tensor& grad = parameter.grad();
    totals.push_back(grad.defined() ? 1.0 : 0.0);
    pieces.push_back(grad.defined()
                         ? grad.detach().reshape({-1}).to(at::kFloat)
                         : at::zeros({parameter.numel()}, at::kFloat));
  }
  at::Tensor flat = at::cat(pieces);
  at::Tensor scalars = at::tensor(totals, at::kDouble);
  LORA_RETURN_IF_ERROR(reducer_->AllReduceSum(flat));
  LORA_RETURN_IF_ERROR(reducer_->AllReduceSum(scalars));
  const auto reduced = scalars.accessor<double, 1>();
  *step_loss = reduced[0];
  *stop = reduced[1] > 0;
  int64_t offset = 0;
  for (size_t i = 0; i < parameters.size(); ++i) {
    at::Tensor parameter = parameters[i];
    const int64_t n = parameter.numel();
    // A parameter no rank has a gradient for stays without one, so AdamW
    // skips it as it would in one process.
    if (reduced[2 + i] > 0) {
      if (!parameter.grad().defined()) {
        parameter.mutable_grad() = at::zeros_like(parameter);
      }
      parameter.mutable_grad().copy_(
          flat.slice(0, offset, offset + n).view_as(parameter));
    }
    offset += n;
  }
  return absl::OkStatus();
}

absl::Status Trainer::DumpWeights() const {
  if (weights_dump_directory_.empty()) return absl::OkStatus();
  std::error_code error;
  std::filesystem::create_directories(weights_dump_directory_, error);
  NamedTensors tensors;
  for (const auto& [name, parameter] : model_->TrainableParameters()) {
    tensors[name] = parameter.detach();
  }
  return SaveSafetensors(
      absl::StrCat(weights_dump_directory_, "/trainable_rank", reducer_->rank(),
                   ".safetensors"),
      tensors);
}

absl::Status Trainer::Export(const Json& results) {
  const std::string directory =
      config_.output_dir +
      (model_->LoraLayers().empty() ? "/model" : "/adapter");
  if (model_->LoraLayers().empty()) {
    // A Hugging Face checkpoint folder, tokenizer included, usable as any
    // later job's `model:`.
    LORA_RETURN_IF_ERROR(SavePretrained(*model_, directory, false));
    LORA_RETURN_IF_ERROR(tokenizer_->SaveVocabulary(directory));
  } else {
    LORA_RETURN_IF_ERROR(ExportPeftAdapter(*model_, directory));
  }
  // What eval --adapter needs to rebuild the run: its configuration, with
  // the base model named as trained.
  return WriteFileAtomically(directory + "/" + kRunConfigFile,
                             TrainConfigToYaml(config_));
}

absl::StatusOr<std::map<std::string, double>> EvaluateExportedRun(
    const std::string& directory, int64_t threads) {
  LORA_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer,
                        Trainer::CreateFromExport(directory, threads));
  LORA_ASSIGN_OR_RETURN(auto metrics, trainer->Evaluate());
  if (trainer->config().task == DataTask::kE2e) {
    metrics["val_bleu"] = trainer->EvaluateBleu();
  }
  return metrics;
}

}  // namespace lora::core
