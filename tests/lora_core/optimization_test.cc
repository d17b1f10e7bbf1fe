// The learning-rate schedule and the dynamic loss scaler on synthetic
// gradients, and the scaler's state through a training checkpoint.
#include "lora_core/optimization.h"

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <cmath>
#include <cstdlib>
#include <limits>

#include "gtest/gtest.h"
#include "lora_core/task_model.h"
#include "lora_core/training_checkpoint.h"

namespace lora::core {
namespace {

at::Tensor ParameterWithGrad(std::vector<float> grad) {
  at::Tensor parameter =
      at::zeros({static_cast<int64_t>(grad.size())}).set_requires_grad(true);
  parameter.mutable_grad() = at::tensor(grad);
  return parameter;
}

TEST(LinearWarmupDecayTest, RisesThenFallsToZero) {
  EXPECT_DOUBLE_EQ(LinearWarmupDecayFactor(0, 10, 100), 0.0);
  EXPECT_DOUBLE_EQ(LinearWarmupDecayFactor(5, 10, 100), 0.5);
  EXPECT_DOUBLE_EQ(LinearWarmupDecayFactor(10, 10, 100), 1.0);
  EXPECT_DOUBLE_EQ(LinearWarmupDecayFactor(55, 10, 100), 0.5);
  EXPECT_DOUBLE_EQ(LinearWarmupDecayFactor(100, 10, 100), 0.0);
  EXPECT_DOUBLE_EQ(LinearWarmupDecayFactor(0, 0, 100), 1.0);
}

TEST(DynamicLossScalerTest, UnscalesCleanGradients) {
  DynamicLossScaler scaler;
  EXPECT_EQ(scaler.scale(), 65536.0);
  EXPECT_DOUBLE_EQ(scaler.ScaleLoss(at::tensor(2.0)).item<double>(), 131072.0);
  at::Tensor p = ParameterWithGrad({65536.0f, -131072.0f});
  EXPECT_FALSE(scaler.UnscaleGradients({p}));
  EXPECT_TRUE(at::equal(p.grad(), at::tensor({1.0f, -2.0f})));
}

TEST(DynamicLossScalerTest, InfOrNanSkipsAndHalves) {
  DynamicLossScaler scaler;
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  at::Tensor clean = ParameterWithGrad({1.0f});
  at::Tensor bad = ParameterWithGrad({1.0f, inf});
  EXPECT_TRUE(scaler.UnscaleGradients({clean, bad}));
  scaler.Update(true);
  EXPECT_EQ(scaler.scale(), 32768.0);
  EXPECT_TRUE(scaler.UnscaleGradients({ParameterWithGrad({nan})}));
  scaler.Update(true);
  EXPECT_EQ(scaler.scale(), 16384.0);
  EXPECT_EQ(scaler.state().growth_tracker, 0);
}

TEST(DynamicLossScalerTest, GrowsAfterIntervalOfCleanSteps) {
  DynamicLossScaler::Options options;
  options.init_scale = 8.0;
  options.growth_interval = 3;
  DynamicLossScaler scaler(options);
  scaler.Update(false);
  scaler.Update(false);
  EXPECT_EQ(scaler.scale(), 8.0);
  EXPECT_EQ(scaler.state().growth_tracker, 2);
  scaler.Update(false);
  EXPECT_EQ(scaler.scale(), 16.0);
  EXPECT_EQ(scaler.state().growth_tracker, 0);
  scaler.Update(false);
  scaler.Update(true);  // An overflow resets the count of clean steps.
  EXPECT_EQ(scaler.scale(), 8.0);
  EXPECT_EQ(scaler.state().growth_tracker, 0);
}

TEST(DynamicLossScalerTest, StateSurvivesATrainingCheckpoint) {
  at::manual_seed(0);
  ModelSpec spec;
  spec.head = HeadKind::kLinearOnPooler;
  spec.lora.rank = 2;
  spec.lora.target_modules = {"query"};
  std::shared_ptr<TaskModel> model =
      *TaskModel::Create(*BuiltinModelConfig("roberta-tiny"), spec);
  std::vector<at::Tensor> parameters;
  for (auto& [name, parameter] : model->TrainableParameters()) {
    parameters.push_back(parameter);
  }
  torch::optim::AdamW optimizer(parameters);
  DynamicLossScaler scaler;
  scaler.Update(true);
  scaler.Update(false);
  scaler.Update(false);
  TrainingProgress progress;
  progress.step = 3;
  progress.scaler = scaler.state();
  progress.config_fingerprint = "fp";
  const std::string path =
      std::string(std::getenv("TEST_TMPDIR")) + "/state.safetensors";
  ASSERT_TRUE(SaveTrainingCheckpoint(path, *model, optimizer, progress).ok());
  absl::StatusOr<TrainingProgress> loaded =
      LoadTrainingCheckpoint(path, *model, optimizer, "fp");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  DynamicLossScaler restored;
  restored.set_state(loaded->scaler);
  EXPECT_EQ(restored.scale(), 32768.0);
  EXPECT_EQ(restored.state().growth_tracker, 2);
  EXPECT_EQ(loaded->step, 3);
  // Another configuration may not resume from it.
  EXPECT_EQ(
      LoadTrainingCheckpoint(path, *model, optimizer, "other").status().code(),
      absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace lora::core
