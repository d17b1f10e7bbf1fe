// lora-train: trains, evaluates and samples one LoRA job without a
// coordinator. Run `lora-train --help` for usage.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lora_core/distributed_env.h"
#include "lora_core/generation.h"
#include "lora_core/gloo_gradient_reducer.h"
#include "lora_core/rank_launcher.h"
#include "lora_core/text_datasets.h"
#include "lora_core/train_config.h"
#include "lora_core/trainer.h"

namespace {

constexpr char kUsage[] =
    R"(lora-train: one LoRA fine-tuning job, no coordinator needed.

Usage:
  lora-train train CONFIG [--output-dir DIR] [--threads N]
                         [--stop-after-steps N]
      Trains the job CONFIG (YAML or JSON) describes; resumes from the output
      folder's checkpoint. Writes metrics.jsonl, results.json, checkpoint/,
      and adapter/ (PEFT format) or model/. --stop-after-steps interrupts the
      run there (with a checkpoint); running again resumes it.
      Example: lora-train train job.yaml --output-dir runs/r4
      Data parallel (world_size: N > 1 in CONFIG): N ranks, one process
      each, split every batch and all-reduce gradients over Gloo. Run as
      above, lora-train starts the N ranks on this machine and exits with
      rank 0's status. Under an external launcher (torchrun-style), each
      process gets RANK (0..N-1), WORLD_SIZE (= N), MASTER_ADDR and
      MASTER_PORT (where rank 0 serves the rendezvous store) from the
      environment. Rank 0 alone writes the output folder.
  lora-train pretrain CONFIG [--output-dir DIR] [--threads N]
                            [--stop-after-steps N]
      Trains a base model from scratch on a text corpus (task: text):
      masked-LM for RoBERTa (15% of tokens, 80/10/10, new masks every epoch),
      causal LM for GPT-2. Writes model/ (config.json, model.safetensors,
      vocab.json, merges.txt), usable as any job's `model:`.
      Example: lora-train pretrain examples/pretrain_roberta_mini.yaml
  lora-train eval --adapter DIR [--threads N]
      Rebuilds a finished run from its adapter/ (or model/) folder and prints
      its validation metrics as JSON.
      Example: lora-train eval --adapter runs/r4/adapter
  lora-train generate --adapter DIR (--mr MR | --prompt TEXT) [--beam N]
                      [--max-new-tokens N]
      Generates text with a GPT-2 run's adapter.
      Example: lora-train generate --adapter runs/e2e/adapter \
                 --mr "name[The Eagle], eatType[pub], area[riverside]"

Environment:
  LORA_SWEEP_CACHE       tokenised-dataset cache (default ~/.cache/lora-sweep)
  LORA_TRAIN_DEBUG_DUMP  a folder: every rank of `train` writes its final
                         trainable weights to trainable_rank<K>.safetensors

Exit status: 0 success, 2 usage or configuration error, 1 failure.
)";

int Usage(const std::string& problem) {
  std::cerr << "lora-train: " << problem << "\n\n" << kUsage;
  return 2;
}

// Options after the subcommand: "--name value" pairs and positionals.
struct Arguments {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;
};

bool ParseArguments(int argc, char** argv, int first, Arguments* out,
                    std::string* problem) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) == 0) {
      std::string value;
      const size_t equals = arg.find('=');
      if (equals != std::string::npos) {
        value = arg.substr(equals + 1);
        arg = arg.substr(0, equals);
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        *problem = arg + " needs a value";
        return false;
      }
      out->options[arg.substr(2)] = value;
    } else {
      out->positional.push_back(arg);
    }
  }
  return true;
}

bool IntOption(const Arguments& args, const std::string& name, int64_t* value,
               std::string* problem) {
  auto it = args.options.find(name);
  if (it == args.options.end()) return true;
  if (!absl::SimpleAtoi(it->second, value) || *value < 0) {
    *problem = "--" + name + " expects a non-negative integer, got \"" +
               it->second + "\"";
    return false;
  }
  return true;
}

bool OnlyKnownOptions(const Arguments& args,
                      const std::vector<std::string>& known,
                      std::string* problem) {
  for (const auto& [name, value] : args.options) {
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      *problem = "unknown option --" + name;
      return false;
    }
  }
  return true;
}

// Progress on a terminal: one line rewritten in place; otherwise plain lines.
class Progress {
 public:
  Progress() : terminal_(::isatty(STDERR_FILENO) == 1) {}

  void operator()(const nlohmann::json& record) {
    const std::string type = record.value("type", "");
    if (type == "step") {
      const std::string line = absl::StrFormat(
          "epoch %d  step %d/%d  loss %.4f  lr %.2e  %.0f tok/s",
          record["epoch"].get<int64_t>(), record["step"].get<int64_t>(),
          record["total_steps"].get<int64_t>(), record["loss"].get<double>(),
          record["lr"].get<double>(),
          record["tokens_per_second"].get<double>());
      if (terminal_) {
        std::cerr << "\r" << line << "\x1b[K" << std::flush;
      } else {
        std::cerr << line << "\n";
      }
    } else if (type == "epoch") {
      if (terminal_) std::cerr << "\r\x1b[K";
      std::cerr << "epoch " << record["epoch"] << " done:";
      for (const auto& [key, value] : record.items()) {
        if (key != "type" && key != "epoch") {
          std::cerr << " " << key << "=" << value.dump();
        }
      }
      std::cerr << "\n";
    } else if (type == "load_report" || type == "resume" ||
               type == "generation") {
      if (terminal_) std::cerr << "\r\x1b[K";
      std::cerr << record.dump() << "\n";
    }
  }

 private:
  bool terminal_;
};

// Data parallel: this process's part in the job, from the environment.
// Returns an exit status when the process is done (the launcher, or an
// error), otherwise sets *reducer (null for a single process).
std::optional<int> JoinJob(
    const lora::core::TrainConfig& config,
    const std::vector<std::string>& command_line,
    std::unique_ptr<lora::core::GradientReducer>* reducer) {
  using lora::core::DistributedRole;
  absl::StatusOr<lora::core::DistributedSetup> setup =
      lora::core::DistributedSetupFromEnvironment(
          config.world_size,
          [](const char* name) { return std::getenv(name); });
  if (!setup.ok()) {
    std::cerr << "lora-train: " << setup.status().message() << "\n";
    return 2;
  }
  if (setup->role == DistributedRole::kLauncher) {
    lora::core::RankLaunchOptions launch;
    launch.executable = "/proc/self/exe";
    launch.argv = command_line;
    launch.world_size = static_cast<int>(config.world_size);
    absl::StatusOr<int> status = lora::core::LaunchRanks(launch);
    if (!status.ok()) {
      std::cerr << "lora-train: " << status.status().message() << "\n";
      return 1;
    }
    return *status;
  }
  if (setup->role == DistributedRole::kRank) {
    absl::StatusOr<std::unique_ptr<lora::core::GlooGradientReducer>> gloo =
        lora::core::GlooGradientReducer::Open(setup->options);
    if (!gloo.ok()) {
      std::cerr << "lora-train: " << gloo.status().message() << "\n";
      return 1;
    }
    *reducer = std::move(*gloo);
  }
  return std::nullopt;
}

int Train(const Arguments& args, bool pretrain,
          const std::vector<std::string>& command_line) {
  std::string problem;
  if (args.positional.size() != 1) {
    return Usage("train takes exactly one CONFIG file");
  }
  if (!OnlyKnownOptions(args, {"output-dir", "threads", "stop-after-steps"},
                        &problem)) {
    return Usage(problem);
  }
  absl::StatusOr<lora::core::TrainConfig> config =
      lora::core::LoadTrainConfig(args.positional[0]);
  if (!config.ok()) {
    std::cerr << "lora-train: " << config.status().message() << "\n";
    return config.status().code() == absl::StatusCode::kNotFound ? 1 : 2;
  }
  int64_t threads = 0, stop_after_steps = -1;
  if (!IntOption(args, "threads", &threads, &problem) ||
      !IntOption(args, "stop-after-steps", &stop_after_steps, &problem)) {
    return Usage(problem);
  }
  if (pretrain) {
    if (config->task != lora::core::DataTask::kText) {
      return Usage("pretrain needs task: text in " + args.positional[0]);
    }
    config->trainable = lora::core::TrainableSet::kFull;
  }
  if (threads > 0) config->threads = threads;
  if (stop_after_steps >= 0) config->stop_after_steps = stop_after_steps;
  if (auto it = args.options.find("output-dir"); it != args.options.end()) {
    config->output_dir = it->second;
  }
  if (config->output_dir.empty()) {
    return Usage("output_dir: set it in the config or with --output-dir");
  }
  std::unique_ptr<lora::core::GradientReducer> reducer;
  if (std::optional<int> done = JoinJob(*config, command_line, &reducer)) {
    return *done;
  }
  // Messages of ranks other than 0 say whose they are.
  const int rank = reducer != nullptr ? reducer->rank() : 0;
  const std::string prefix =
      rank > 0 ? absl::StrCat("lora-train: rank ", rank, ": ") : "lora-train: ";
  absl::StatusOr<std::unique_ptr<lora::core::Trainer>> trainer =
      lora::core::Trainer::Create(*config, std::move(reducer));
  if (!trainer.ok()) {
    std::cerr << prefix << trainer.status().message() << "\n";
    return trainer.status().code() == absl::StatusCode::kInvalidArgument ? 2
                                                                         : 1;
  }
  Progress progress;
  (*trainer)->set_observer(std::ref(progress));
  if (const char* dump = std::getenv("LORA_TRAIN_DEBUG_DUMP");
      dump != nullptr && *dump != '\0') {
    (*trainer)->set_weights_dump_directory(dump);
  }
  // SIGTERM (a worker draining, or a cancelled run): checkpoint at the next
  // step and stop with "status": "stopped".
  std::signal(SIGTERM, [](int) { lora::core::Trainer::RequestStop(); });
  absl::StatusOr<nlohmann::json> results = (*trainer)->Run();
  if (!results.ok()) {
    std::cerr << prefix << results.status().message() << "\n";
    return results.status().code() == absl::StatusCode::kInvalidArgument ? 2
                                                                         : 1;
  }
  // results.json's content, from rank 0 only.
  if (rank == 0) std::cout << results->dump(2) << "\n";
  return 0;
}

int Eval(const Arguments& args) {
  std::string problem;
  if (!OnlyKnownOptions(args, {"adapter", "threads"}, &problem)) {
    return Usage(problem);
  }
  auto adapter = args.options.find("adapter");
  if (adapter == args.options.end() || !args.positional.empty()) {
    return Usage("eval needs --adapter DIR and nothing else");
  }
  int64_t threads = 0;
  if (!IntOption(args, "threads", &threads, &problem)) return Usage(problem);
  absl::StatusOr<std::map<std::string, double>> metrics =
      lora::core::EvaluateExportedRun(adapter->second, threads);
  if (!metrics.ok()) {
    std::cerr << "lora-train: " << metrics.status().message() << "\n";
    return 1;
  }
  std::cout << nlohmann::json(*metrics).dump(2) << "\n";
  return 0;
}

int Generate(const Arguments& args) {
  std::string problem;
  if (!OnlyKnownOptions(
          args,
          {"adapter", "threads", "mr", "prompt", "beam", "max-new-tokens"},
          &problem)) {
    return Usage(problem);
  }
  auto adapter = args.options.find("adapter");
  auto mr = args.options.find("mr");
  auto prompt = args.options.find("prompt");
  if (adapter == args.options.end() ||
      (mr == args.options.end()) == (prompt == args.options.end())) {
    return Usage("generate needs --adapter DIR and one of --mr or --prompt");
  }
  int64_t threads = 0, beam = -1, max_new_tokens = -1;
  if (!IntOption(args, "threads", &threads, &problem) ||
      !IntOption(args, "beam", &beam, &problem) ||
      !IntOption(args, "max-new-tokens", &max_new_tokens, &problem)) {
    return Usage(problem);
  }
  absl::StatusOr<std::unique_ptr<lora::core::Trainer>> run =
      lora::core::Trainer::CreateFromExport(adapter->second, threads);
  if (!run.ok()) {
    std::cerr << "lora-train: " << run.status().message() << "\n";
    return 1;
  }
  if ((*run)->model().config().architecture !=
      lora::core::Architecture::kGpt2) {
    std::cerr << "lora-train: generate needs a GPT-2 run\n";
    return 2;
  }
  const lora::core::TrainConfig& config = (*run)->config();
  lora::core::GenerationOptions options;
  options.beam_size = beam > 0 ? beam : config.generation.beam_size;
  options.length_penalty = config.generation.length_penalty;
  options.no_repeat_ngram_size = config.generation.no_repeat_ngram_size;
  options.max_new_tokens =
      max_new_tokens > 0 ? max_new_tokens : config.generation.max_new_tokens;
  options.eos_id = (*run)->tokenizer().eos_id();
  const std::string text = mr != args.options.end()
                               ? lora::core::E2ePrompt(mr->second)
                               : prompt->second;
  const std::vector<int64_t> generated = lora::core::Generate(
      (*run)->model(), (*run)->tokenizer().Encode(text), options);
  std::cout << (*run)->tokenizer().Decode(generated) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage("missing subcommand");
  const std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << kUsage;
    return 0;
  }
  Arguments args;
  std::string problem;
  for (int i = 2; i < argc; ++i) {
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      std::cout << kUsage;
      return 0;
    }
  }
  if (!ParseArguments(argc, argv, 2, &args, &problem)) return Usage(problem);
  const std::vector<std::string> command_line(argv, argv + argc);
  if (command == "train") return Train(args, /*pretrain=*/false, command_line);
  if (command == "pretrain")
    return Train(args, /*pretrain=*/true, command_line);
  if (command == "eval") return Eval(args);
  if (command == "generate") return Generate(args);
  return Usage("unknown subcommand \"" + command + "\"");
}
