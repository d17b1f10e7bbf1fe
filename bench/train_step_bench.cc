// The bare LoRA training step, timed: forward (bf16 autocast or float32),
// cross-entropy loss, backward, gradient clipping, AdamW step, zero_grad —
// the trainer's step (lora_core/trainer.cc) without data loading, logging
// or evaluation. The model is a RoBERTa task model with random weights and
// Hugging Face's RobertaClassificationHead (2 labels), LoRA on query and
// value; one fixed random batch is reused every step.
//
// Also measures the machine's GEMM ceiling on the step's own shapes.
// bench/train_step_python.py is the same step in plain PyTorch eager;
// bench/train_step_compare.sh interleaves both and writes the table.
//
//   train_step_bench step --model=roberta-base --amp=bf16 --batch=16
//                         --seq=64 --rank=4 --threads=2 --steps=10 --warmup=2
//   train_step_bench gemm --dtype=bf16 --m=1024 --k=768 --n=3072 --reps=10
//
// step --profile=TRACE.json also records the timed steps with LibTorch's
// profiler as a Chrome trace; bench/profile_report.py turns it into the share
// of step time per operator (the profiler adds a fixed cost to every
// operator call: about 25% to a roberta-base step).
//
// Prints one JSON object per run on stdout.
// First: torch/nn/utils/clip_grad.h uses at::Tensor without declaring it.
#include <torch/types.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lora_core/cpu_autocast.h"
#include "lora_core/model_config.h"
#include "lora_core/model_layout.h"
#include "lora_core/task_model.h"
#include "lora_core/torch_runtime.h"

namespace lora::core {
namespace {

using Clock = std::chrono::steady_clock;

// --key=value arguments after the mode.
std::map<std::string, std::string> ParseArgs(int argc, char** argv) {
  std::map<std::string, std::string> args;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    const size_t eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos) {
      std::cerr << "bad argument " << arg << " (expected --key=value)\n";
      std::exit(2);
    }
    args[arg.substr(2, eq - 2)] = arg.substr(eq + 1);
  }
  return args;
}

std::string Get(const std::map<std::string, std::string>& args,
                const std::string& key, const std::string& fallback) {
  auto it = args.find(key);
  return it == args.end() ? fallback : it->second;
}

int64_t GetInt(const std::map<std::string, std::string>& args,
               const std::string& key, int64_t fallback) {
  return std::stoll(Get(args, key, std::to_string(fallback)));
}

int RunStep(const std::map<std::string, std::string>& args) {
  const std::string model_name = Get(args, "model", "roberta-base");
  const bool bf16 = Get(args, "amp", "bf16") == "bf16";
  const int64_t batch = GetInt(args, "batch", 16);
  const int64_t seq = GetInt(args, "seq", 64);
  const int64_t steps = GetInt(args, "steps", 10);
  const int64_t warmup = GetInt(args, "warmup", 2);
  const int threads = static_cast<int>(GetInt(args, "threads", 2));
  SetTorchThreads(threads);
  at::manual_seed(0);

  absl::StatusOr<ModelConfig> config = BuiltinModelConfig(model_name);
  if (!config.ok()) {
    std::cerr << config.status() << "\n";
    return 2;
  }
  ModelSpec spec;
  spec.head = HeadKind::kRobertaClassification;
  spec.num_labels = 2;
  spec.lora.rank = GetInt(args, "rank", 4);
  spec.lora.alpha = 16;
  spec.lora.target_modules = {"query", "value"};
  spec.trainable = TrainableSet::kLora;
  absl::StatusOr<std::shared_ptr<TaskModel>> model =
      TaskModel::Create(*config, spec);
  if (!model.ok()) {
    std::cerr << model.status() << "\n";
    return 2;
  }
  std::vector<at::Tensor> parameters;
  int64_t trainable = 0;
  for (auto& [name, tensor] : (*model)->TrainableParameters()) {
    parameters.push_back(tensor);
    trainable += tensor.numel();
  }
  torch::optim::AdamW optimizer(
      parameters, torch::optim::AdamWOptions(1e-4).weight_decay(0.01));

  at::Tensor input_ids = at::randint(3, config->vocab_size, {batch, seq});
  at::Tensor attention_mask = at::ones({batch, seq}, at::kLong);
  at::Tensor labels = at::randint(0, 2, {batch});
  (*model)->train();

  const std::string profile_path = Get(args, "profile", "");
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
  std::vector<double> step_seconds;
  double last_loss = 0;
  for (int64_t step = 0; step < warmup + steps; ++step) {
    if (step == warmup && !profile_path.empty()) {
      profile = std::make_unique<torch::autograd::profiler::RecordProfile>(
          profile_path);
    }
    const auto start = Clock::now();
    TaskModelOutput output;
    {
      ScopedCpuAutocast autocast(bf16);
      output = (*model)->forward(input_ids, attention_mask);
    }
    at::Tensor loss =
        at::cross_entropy_loss(output.logits.to(at::kFloat), labels);
    loss.backward();
    torch::nn::utils::clip_grad_norm_(parameters, 1.0);
    optimizer.step();
    optimizer.zero_grad();
    last_loss = loss.item<double>();
    const double seconds =
        std::chrono::duration<double>(Clock::now() - start).count();
    if (step >= warmup) step_seconds.push_back(seconds);
  }
  profile.reset();  // writes the trace
  double total = 0;
  for (double s : step_seconds) total += s;
  const char* disabled = std::getenv("LORA_CORE_DISABLE_SPEEDUPS");
  std::printf(
      "{\"impl\": \"cpp\", \"disabled\": \"%s\", \"model\": \"%s\", "
      "\"amp\": \"%s\", \"batch\": "
      "%lld, \"seq\": %lld, \"threads\": %d, \"steps\": %lld, "
      "\"trainable\": %lld, \"tokens_per_second\": %.3f, \"loss\": %.5f}\n",
      disabled == nullptr ? "" : disabled, model_name.c_str(),
      bf16 ? "bf16" : "fp32", static_cast<long long>(batch),
      static_cast<long long>(seq), threads, static_cast<long long>(steps),
      static_cast<long long>(trainable),
      static_cast<double>(batch * seq * steps) / total, last_loss);
  return 0;
}

int RunGemm(const std::map<std::string, std::string>& args) {
  const bool bf16 = Get(args, "dtype", "bf16") == "bf16";
  const int64_t m = GetInt(args, "m", 1024), k = GetInt(args, "k", 768),
                n = GetInt(args, "n", 768);
  const int threads = static_cast<int>(GetInt(args, "threads", 2));
  SetTorchThreads(threads);
  const double flops = MeasureMatmulFlops(
      m, k, n, bf16, static_cast<int>(GetInt(args, "reps", 10)));
  std::printf(
      "{\"impl\": \"gemm\", \"dtype\": \"%s\", \"m\": %lld, \"k\": %lld, "
      "\"n\": %lld, \"threads\": %d, \"flops\": %.6g}\n",
      bf16 ? "bf16" : "fp32", static_cast<long long>(m),
      static_cast<long long>(k), static_cast<long long>(n), threads, flops);
  return 0;
}

}  // namespace
}  // namespace lora::core

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  const auto args = lora::core::ParseArgs(argc, argv);
  if (mode == "step") return lora::core::RunStep(args);
  if (mode == "gemm") return lora::core::RunGemm(args);
  std::cerr << "usage: train_step_bench step|gemm --key=value...\n";
  return 2;
}
