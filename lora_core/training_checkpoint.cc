#include "lora_core/training_checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/string_utils.h>

#include <mutex>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "lora_core/safetensors.h"
#include "lora_core/tensor_io.h"

namespace lora::core {
namespace {

using Json = nlohmann::json;

constexpr char kWeights[] = "model/";
constexpr char kExpAvg[] = "adam/exp_avg/";
constexpr char kExpAvgSq[] = "adam/exp_avg_sq/";
constexpr char kRng[] = "rng/cpu";

std::string StateKey(const at::Tensor& parameter) {
  return c10::guts::to_string(parameter.unsafeGetTensorImpl());
}

}  // namespace

absl::Status SaveTrainingCheckpoint(const std::string& path,
                                    const TaskModel& model,
                                    const torch::optim::AdamW& optimizer,
                                    const TrainingProgress& progress) {
  NamedTensors tensors;
  Json adam_steps = Json::object();
  const auto& state = optimizer.state();
  for (const auto& [name, parameter] : model.TrainableParameters()) {
    tensors[kWeights + name] = parameter.detach();
    auto it = state.find(StateKey(parameter));
    if (it == state.end()) continue;  // Not stepped yet.
    const auto& adam =
        static_cast<const torch::optim::AdamWParamState&>(*it->second);
    tensors[kExpAvg + name] = adam.exp_avg();
    tensors[kExpAvgSq + name] = adam.exp_avg_sq();
    adam_steps[name] = adam.step();
  }
  // The generator state is a byte tensor; safetensors has no U8 here, so it
  // travels as I64 values 0-255.
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  at::Tensor rng;
  {
    std::lock_guard<std::mutex> lock(generator.mutex());
    rng = generator.get_state().to(at::kLong);
  }
  tensors[kRng] = rng;
  Json meta = {{"step", progress.step},
               {"epoch", progress.epoch},
               {"batch_in_epoch", progress.batch_in_epoch},
               {"best_metric", progress.best_metric},
               {"best_epoch", progress.best_epoch},
               {"evaluations_without_improvement",
                progress.evaluations_without_improvement},
               {"tokens_seen", progress.tokens_seen},
               {"epoch_loss_sum", progress.epoch_loss_sum},
               {"epoch_steps", progress.epoch_steps},
               {"train_seconds", progress.train_seconds},
               {"loss_scale", progress.scaler.scale},
               {"loss_scale_growth_tracker", progress.scaler.growth_tracker},
               {"adam_steps", adam_steps}};
  return SaveSafetensors(path, tensors,
                         {{"lora_sweep_training_state", meta.dump()},
                          {"config_fingerprint", progress.config_fingerprint}});
}

absl::StatusOr<TrainingProgress> LoadTrainingCheckpoint(
    const std::string& path, TaskModel& model, torch::optim::AdamW& optimizer,
    const std::string& expected_fingerprint) {
  LORA_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsReader> reader,
                        SafetensorsReader::Open(path));
  const auto& metadata = reader->metadata();
  auto fingerprint = metadata.find("config_fingerprint");
  auto state_text = metadata.find("lora_sweep_training_state");
  if (fingerprint == metadata.end() || state_text == metadata.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a lora-sweep training checkpoint"));
  }
  if (fingerprint->second != expected_fingerprint) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": written under another configuration (fingerprint ",
        fingerprint->second.substr(0, 12), ", this run ",
        expected_fingerprint.substr(0, 12),
        "); use a new output_dir or set resume: false"));
  }
  const std::string written_fingerprint = fingerprint->second;
  Json meta = Json::parse(state_text->second, nullptr, false);
  if (meta.is_discarded() || !meta.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": training state is not valid JSON"));
  }
  reader.reset();
  LORA_ASSIGN_OR_RETURN(NamedTensors tensors, LoadSafetensors(path));

  // Check everything before changing anything.
  const auto trainable = model.TrainableParameters();
  for (const auto& [name, parameter] : trainable) {
    auto weight = tensors.find(kWeights + name);
    if (weight == tensors.end() ||
        !weight->second.sizes().equals(parameter.sizes())) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, ": no weights of the right shape for trainable parameter ",
          name));
    }
  }
  if (tensors.count(kRng) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no random generator state"));
  }
  TrainingProgress progress;
  try {
    progress.step = meta.at("step").get<int64_t>();
    progress.epoch = meta.at("epoch").get<int64_t>();
    progress.batch_in_epoch = meta.at("batch_in_epoch").get<int64_t>();
    progress.best_metric = meta.at("best_metric").get<double>();
    progress.best_epoch = meta.at("best_epoch").get<int64_t>();
    progress.evaluations_without_improvement =
        meta.at("evaluations_without_improvement").get<int64_t>();
    progress.tokens_seen = meta.at("tokens_seen").get<int64_t>();
    progress.epoch_loss_sum = meta.at("epoch_loss_sum").get<double>();
    progress.epoch_steps = meta.at("epoch_steps").get<int64_t>();
    progress.train_seconds = meta.at("train_seconds").get<double>();
    progress.scaler.scale = meta.at("loss_scale").get<double>();
    progress.scaler.growth_tracker =
        meta.at("loss_scale_growth_tracker").get<int64_t>();
  } catch (const Json::exception& error) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": training state: ", error.what()));
  }
  progress.config_fingerprint = written_fingerprint;

  torch::NoGradGuard no_grad;
  auto& state = optimizer.state();
  for (const auto& [name, parameter] : trainable) {
    parameter.copy_(tensors[kWeights + name]);
    auto exp_avg = tensors.find(kExpAvg + name);
    auto exp_avg_sq = tensors.find(kExpAvgSq + name);
    if (exp_avg == tensors.end() || exp_avg_sq == tensors.end()) continue;
    auto adam = std::make_unique<torch::optim::AdamWParamState>();
    adam->step(meta["adam_steps"].value(name, int64_t{0}));
    adam->exp_avg(exp_avg->second.clone());
    adam->exp_avg_sq(exp_avg_sq->second.clone());
    state[StateKey(parameter)] = std::move(adam);
  }
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(tensors[kRng].to(at::kByte));
  }
  return progress;
}

}  // namespace lora::core
