// `loractl demo [--quick] [--dir DIR]`: the whole product on one machine.
// Makes a base model once (`lora-train pretrain`), starts the real `lorad`
// and one `lora-worker` as child processes on 127.0.0.1 with free ports,
// submits the rank-ablation sweep (LoRA on query+value with r = 1, 2, 4, 8,
// plus head-only and full fine-tuning baselines) through the normal submit
// path, watches it, prints the results tables, writes DIR/ablation.svg and
// stops the children with SIGTERM (on errors too).
//
// The three binaries are found next to loractl: in the runfiles of the
// running target ($RUNFILES_DIR, $TEST_SRCDIR, or <loractl>.runfiles), else
// beside it in bazel-bin (bazel-bin/loractl/loractl ->
// bazel-bin/coordinator/lorad). `bazel build //loractl:demo` builds them all.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/file_util.h"
#include "loractl/commands.h"
#include "nlohmann/json.hpp"

namespace lora::loractl {
namespace {

namespace fs = std::filesystem;

constexpr char kWorkspace[] = "lora_sweep";

// What the demo trains: the quick variant (tests, about a minute) or the
// full one (about 15 minutes on 2 cores).
struct DemoPlan {
  std::string base_model;  // built-in architecture pretrained into DIR/base
  int pretrain_steps = 0;
  int pretrain_batch = 0;
  int epochs = 0;
  int max_steps = 0;  // per fine-tuning run; 0 = the epochs' steps
  int finetune_batch = 32;
  // Rough rates on 2 CPU cores, for the up-front estimate.
  double pretrain_step_seconds = 0;
  double lora_step_seconds = 0;
  double full_step_seconds = 0;
  double run_overhead_seconds = 0;  // start, tokenise, evaluate, upload
};

constexpr int kPolarityTrainExamples = 3000;
constexpr int kRuns = 6;  // head-only, r = 1, 2, 4, 8, full

DemoPlan PlanFor(bool quick) {
  DemoPlan plan;
  if (quick) {
    plan.base_model = "roberta-tiny";
    plan.pretrain_steps = 4;
    plan.pretrain_batch = 16;
    plan.epochs = 1;
    plan.max_steps = 6;
    plan.pretrain_step_seconds = 1.0;
    plan.lora_step_seconds = 0.1;
    plan.full_step_seconds = 0.15;
    plan.run_overhead_seconds = 6;
  } else {
    plan.base_model = "roberta-mini";
    plan.pretrain_steps = 300;
    plan.pretrain_batch = 64;
    plan.epochs = 2;
    plan.max_steps = 0;
    // Measured on the 2-core development machines (2026-11-29: the whole
    // demo took 4 min 9 s): pretraining 2 min 53 s for 300 steps, each
    // fine-tuning run about 12 s including its start.
    plan.pretrain_step_seconds = 0.6;
    plan.lora_step_seconds = 0.04;
    plan.full_step_seconds = 0.06;
    plan.run_overhead_seconds = 6;
  }
  return plan;
}

int FinetuneSteps(const DemoPlan& plan) {
  const int per_epoch =
      (kPolarityTrainExamples + plan.finetune_batch - 1) / plan.finetune_batch;
  const int steps = per_epoch * plan.epochs;
  return plan.max_steps > 0 && plan.max_steps < steps ? plan.max_steps : steps;
}

double EstimateSeconds(const DemoPlan& plan, bool pretrain) {
  const int steps = FinetuneSteps(plan);
  double seconds = 10;  // lorad and the worker starting, uploads
  if (pretrain) seconds += plan.pretrain_steps * plan.pretrain_step_seconds;
  seconds += kRuns * plan.run_overhead_seconds;
  seconds += 5 * steps * plan.lora_step_seconds;  // head-only and 4 ranks
  seconds += steps * plan.full_step_seconds;
  return seconds;
}

std::string Minutes(double seconds) {
  if (seconds < 90) return absl::StrFormat("%.0f seconds", seconds);
  return absl::StrFormat("%.0f minutes", seconds / 60);
}

std::string PretrainYaml(const DemoPlan& plan) {
  // bench/study/pretrain_roberta.yaml with the demo's budget.
  return absl::StrCat(
      "# Written by `loractl demo`: masked-LM pretraining of the base model\n"
      "# (bench/study/pretrain_roberta.yaml with the demo's budget).\n"
      "model: ",
      plan.base_model,
      "\n"
      "task: text\n"
      "epochs: 100\n"
      "max_steps: ",
      plan.pretrain_steps,
      "\n"
      "batch_size: ",
      plan.pretrain_batch,
      "\n"
      "lr: 1.0e-3\n"
      "warmup_ratio: 0.1\n"
      "weight_decay: 0.01\n"
      "max_seq_len: 64\n"
      "amp: bf16\n"
      "seed: 0\n"
      "threads: 2\n"
      "log_every_steps: 50\n"
      "checkpoint_every_steps: 200\n");
}

std::string SweepYaml(const DemoPlan& plan, const std::string& model_dir,
                      bool quick) {
  std::string fixed = absl::StrCat("  epochs: ", plan.epochs, "\n");
  if (plan.max_steps > 0) {
    absl::StrAppend(&fixed, "  max_steps: ", plan.max_steps, "\n");
  }
  return absl::StrCat(
      "# Written by `loractl demo`: the rank ablation on the Pang & Lee\n"
      "# polarity data, LoRA on query and value against head-only and full\n"
      "# fine-tuning of the same pretrained base (DIR/base/model).\n"
      "name: ",
      quick ? "demo-quick-polarity-rank-ablation"
            : "demo-polarity-rank-ablation",
      "\n"
      "model: ",
      model_dir,
      "\n"
      "task: polarity\n"
      "method: list\n"
      "points:\n"
      "  - {trainable: head_only, lr: 5.0e-3}\n"
      "  - {trainable: lora, lora.rank: 1, lr: 2.0e-3}\n"
      "  - {trainable: lora, lora.rank: 2, lr: 2.0e-3}\n"
      "  - {trainable: lora, lora.rank: 4, lr: 2.0e-3}\n"
      "  - {trainable: lora, lora.rank: 8, lr: 2.0e-3}\n"
      "  - {trainable: full, lr: 1.0e-4}\n"
      "fixed:\n"
      "  head: linear_pooled\n"
      "  lora.alpha: 16\n"
      "  lora.target_modules: [query, value]\n",
      fixed, "  batch_size: ", plan.finetune_batch,
      "\n"
      "  warmup_ratio: 0.06\n"
      "  max_seq_len: 64\n"
      "  amp: bf16\n"
      "  seed: 0\n"
      "  log_every_steps: 10\n"
      "max_attempts: 2\n"
      "metric: {name: val_accuracy, goal: maximize}\n");
}

bool IsExecutable(const std::string& path) {
  return ::access(path.c_str(), X_OK) == 0 && fs::is_regular_file(path);
}

// `relative` (e.g. "coordinator/lorad") in a runfiles tree or beside the
// running loractl in bazel-bin.
absl::StatusOr<std::string> FindBinary(const std::string& relative,
                                       const EnvLookup& env) {
  std::vector<std::string> candidates;
  for (const char* var : {"RUNFILES_DIR", "TEST_SRCDIR"}) {
    if (std::optional<std::string> dir = env(var); dir && !dir->empty()) {
      candidates.push_back(absl::StrCat(*dir, "/", kWorkspace, "/", relative));
    }
  }
  std::error_code error;
  const fs::path self = fs::read_symlink("/proc/self/exe", error);
  if (!error) {
    candidates.push_back(
        absl::StrCat(self.string(), ".runfiles/", kWorkspace, "/", relative));
    // bazel-bin/loractl/loractl -> bazel-bin/<relative>.
    candidates.push_back(
        (self.parent_path().parent_path() / relative).string());
  }
  for (const std::string& candidate : candidates) {
    if (IsExecutable(candidate)) return candidate;
  }
  return absl::NotFoundError(absl::StrCat(
      "cannot find ", relative,
      " next to loractl; build it with `bazel build //loractl:demo` (looked "
      "in: ",
      absl::StrJoin(candidates, ", "), ")"));
}

// A child process whose stdout and stderr go to a log file. It gets SIGTERM
// if loractl dies first.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { Stop(absl::Seconds(30)); }

  absl::Status Start(const std::string& name,
                     const std::vector<std::string>& argv,
                     const std::string& log_path) {
    name_ = name;
    log_path_ = log_path;
    const int log = ::open(log_path.c_str(),
                           O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0) {
      return absl::InternalError(absl::StrCat("cannot open ", log_path));
    }
    std::vector<char*> args;
    for (const std::string& arg : argv) {
      args.push_back(const_cast<char*>(arg.c_str()));
    }
    args.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
      ::close(log);
      return absl::InternalError(absl::StrCat("fork ", name, " failed"));
    }
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(127);
      const int null = ::open("/dev/null", O_RDONLY);
      if (null >= 0) ::dup2(null, STDIN_FILENO);
      ::dup2(log, STDOUT_FILENO);
      ::dup2(log, STDERR_FILENO);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(log);
    pid_ = pid;
    return absl::OkStatus();
  }

  // The exit status once the child has ended, or -1 while it runs.
  int Poll() {
    if (pid_ <= 0) return exit_code_;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      exit_code_ =
          WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    return pid_ > 0 ? -1 : exit_code_;
  }

  // Waits for the child to end by itself.
  int Wait() {
    if (pid_ <= 0) return exit_code_;
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    exit_code_ =
        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return exit_code_;
  }

  // SIGTERM, then SIGKILL after `grace`. Returns the exit status.
  int Stop(absl::Duration grace) {
    if (Poll() >= 0 || pid_ <= 0) return exit_code_;
    ::kill(pid_, SIGTERM);
    const absl::Time deadline = absl::Now() + grace;
    while (absl::Now() < deadline) {
      if (Poll() >= 0) return exit_code_;
      absl::SleepFor(absl::Milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    return Wait();
  }

  bool running() { return Poll() < 0 && pid_ > 0; }
  const std::string& log_path() const { return log_path_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::string log_path_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

std::string LogTail(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return "";
  constexpr size_t kTail = 2000;
  return text->size() > kTail ? text->substr(text->size() - kTail) : *text;
}

absl::Status ChildFailed(Child& child, int code) {
  return absl::InternalError(
      absl::StrCat(child.name(), " exited with status ", code, "; the end of ",
                   child.log_path(), ":\n", LogTail(child.log_path())));
}

// Waits for lorad's --ports_file and returns its gRPC port.
absl::StatusOr<int> WaitForPorts(Child& lorad, const std::string& ports_file) {
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    if (const int code = lorad.Poll(); code >= 0) {
      return ChildFailed(lorad, code);
    }
    if (absl::StatusOr<std::string> text = ReadFile(ports_file); text.ok()) {
      int grpc = 0;
      bool http = false;
      for (absl::string_view line : absl::StrSplit(*text, '\n')) {
        if (absl::ConsumePrefix(&line, "grpc=")) {
          (void)absl::SimpleAtoi(line, &grpc);
        } else if (absl::StartsWith(line, "http=")) {
          http = true;
        }
      }
      if (grpc > 0 && http) return grpc;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("lorad did not start within 60 s; see ", lorad.log_path()));
}

// Runs another loractl command in this process with the demo's server.
int RunNested(CommandContext& context, std::vector<std::string> args,
              const std::string& server, std::ostream* out) {
  args.push_back("--server");
  args.push_back(server);
  CliIo io = context.io();
  io.out = out;
  return RunLoractl(args, BuiltinCommands(), io);
}

absl::StatusOr<std::string> DemoDir(CommandContext& context) {
  const EnvLookup& env = context.io().env;
  std::string dir;
  if (std::optional<std::string> flag = context.args().Get("dir")) {
    dir = ExpandHome(*flag);
    // `bazel run` starts in the runfiles: relative paths mean the user's
    // folder.
    if (!dir.empty() && dir[0] != '/') {
      if (std::optional<std::string> cwd = env("BUILD_WORKING_DIRECTORY");
          cwd && !cwd->empty()) {
        dir = absl::StrCat(*cwd, "/", dir);
      }
    }
  } else {
    std::optional<std::string> home = env("HOME");
    if (!home || home->empty()) {
      return absl::InvalidArgumentError(
          "HOME is not set: give the demo folder with --dir DIR");
    }
    dir = absl::StrCat(*home, "/.cache/lora-sweep/demo");
  }
  if (dir.empty()) return absl::InvalidArgumentError("--dir: empty path");
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("--dir ", dir, ": ", error.message()));
  }
  return fs::absolute(dir).lexically_normal().string();
}

absl::StatusOr<int> Demo(CommandContext& context) {
  const bool quick = context.args().Has("quick");
  const DemoPlan plan = PlanFor(quick);
  absl::StatusOr<std::string> dir_or = DemoDir(context);
  if (!dir_or.ok()) return dir_or.status();
  const std::string dir = *dir_or;
  std::ostream& out = context.out();

  absl::StatusOr<std::string> lorad_bin =
      FindBinary("coordinator/lorad", context.io().env);
  if (!lorad_bin.ok()) return lorad_bin.status();
  absl::StatusOr<std::string> worker_bin =
      FindBinary("worker/lora-worker", context.io().env);
  if (!worker_bin.ok()) return worker_bin.status();
  absl::StatusOr<std::string> train_bin =
      FindBinary("lora_core/lora-train", context.io().env);
  if (!train_bin.ok()) return train_bin.status();

  const std::string logs = dir + "/logs";
  fs::create_directories(logs);
  const std::string base_dir = dir + "/base";
  const std::string model_dir = base_dir + "/model";
  const bool have_base = fs::exists(model_dir + "/config.json");

  out << "loractl demo" << (quick ? " --quick" : "") << ": a LoRA rank "
      << "ablation through lorad and one local worker\n"
      << "  folder " << dir << "\n"
      << "  base model: " << plan.base_model << ", "
      << (have_base ? "already pretrained (reused)"
                    : absl::StrCat("masked-LM pretraining, ",
                                   plan.pretrain_steps, " steps"))
      << "\n"
      << "  sweep: head-only, LoRA on query+value r = 1, 2, 4, 8 (alpha "
         "16), full fine-tuning; "
      << FinetuneSteps(plan) << " steps each on Pang & Lee polarity\n"
      << "  this takes roughly " << Minutes(EstimateSeconds(plan, !have_base))
      << " on 2 CPU cores (less when the sweep already ran)\n\n";
  out.flush();

  // 1. The base model, once.
  if (!have_base) {
    const std::string config = dir + "/pretrain.yaml";
    if (absl::Status written = WriteFileAtomically(config, PretrainYaml(plan));
        !written.ok()) {
      return written;
    }
    out << "pretraining " << plan.base_model << " into " << base_dir
        << " (log: " << logs << "/pretrain.log)...\n";
    out.flush();
    const absl::Time start = absl::Now();
    Child pretrain;
    if (absl::Status started = pretrain.Start(
            "lora-train pretrain",
            {*train_bin, "pretrain", config, "--output-dir", base_dir},
            logs + "/pretrain.log");
        !started.ok()) {
      return started;
    }
    if (const int code = pretrain.Wait(); code != 0) {
      return ChildFailed(pretrain, code);
    }
    if (!fs::exists(model_dir + "/config.json")) {
      return absl::InternalError(
          absl::StrCat("lora-train pretrain wrote no ", model_dir));
    }
    out << "  done in "
        << absl::FormatDuration(
               absl::Trunc(absl::Now() - start, absl::Seconds(1)))
        << "\n";
  }

  // 2. lorad and a worker. Stopped (SIGTERM) when leaving this scope, in
  //    reverse order: the worker first, so it gives its jobs back.
  const std::string ports_file = dir + "/lorad.ports";
  fs::remove(ports_file);
  Child lorad;
  if (absl::Status started =
          lorad.Start("lorad",
                      {*lorad_bin, "--listen=127.0.0.1:0", "--http=127.0.0.1:0",
                       absl::StrCat("--db=", dir, "/lorad.db"),
                       absl::StrCat("--artifact_root=", dir, "/artifacts"),
                       absl::StrCat("--ports_file=", ports_file)},
                      logs + "/lorad.log");
      !started.ok()) {
    return started;
  }
  absl::StatusOr<int> port = WaitForPorts(lorad, ports_file);
  if (!port.ok()) return port.status();
  const std::string server = absl::StrCat("127.0.0.1:", *port);
  Child worker;
  if (absl::Status started = worker.Start(
          "lora-worker",
          {*worker_bin, absl::StrCat("--coordinator=", server),
           "--name=demo-worker", "--max_jobs=1", "--threads_per_job=2",
           absl::StrCat("--work_dir=", dir, "/worker/work"),
           absl::StrCat("--cache_dir=", dir, "/worker/cache"),
           absl::StrCat("--lora_train=", *train_bin),
           "--http=", "--stop_grace=20s"},
          logs + "/worker.log");
      !started.ok()) {
    return started;
  }
  out << "lorad on " << server << " (log: " << logs
      << "/lorad.log), one worker (log: " << logs << "/worker.log)\n\n";
  out.flush();

  struct StopChildren {
    Child& worker;
    Child& lorad;
    ~StopChildren() {
      worker.Stop(absl::Seconds(30));
      lorad.Stop(absl::Seconds(15));
    }
  } stop_children{worker, lorad};

  // 3. Submit (uploads the base model as an artifact; the same sweep again
  //    returns the existing one).
  const std::string sweep_file = dir + "/sweep.yaml";
  if (absl::Status written =
          WriteFileAtomically(sweep_file, SweepYaml(plan, model_dir, quick));
      !written.ok()) {
    return written;
  }
  std::ostringstream submit_out;
  if (const int code =
          RunNested(context, {"submit", sweep_file, "--output", "json"}, server,
                    &submit_out);
      code != kExitOk) {
    return WithExitCode(absl::UnknownError("submitting the demo sweep failed"),
                        code);
  }
  nlohmann::json submitted =
      nlohmann::json::parse(submit_out.str(), nullptr, false);
  if (submitted.is_discarded() || !submitted.contains("sweep")) {
    return absl::InternalError(
        absl::StrCat("unexpected submit output: ", submit_out.str()));
  }
  const std::string sweep_id = submitted["sweep"].value("sweep_id", "");
  const std::string state = submitted["sweep"].value("state", "");
  const bool existed = submitted.value("already_existed", false);
  out << "sweep " << sweep_id << " ("
      << (existed ? "already submitted: reused" : "submitted") << ", "
      << submitted["runs"].size() << " runs, " << sweep_file << ")\n\n";
  out.flush();

  // 4. Watch, unless it already ended.
  int exit_code = kExitOk;
  const bool finished = state == "SWEEP_STATE_SUCCEEDED" ||
                        state == "SWEEP_STATE_FAILED" ||
                        state == "SWEEP_STATE_CANCELLED";
  if (!finished) {
    exit_code = RunNested(context, {"watch", sweep_id}, server, &out);
    out << "\n";
  } else {
    out << "the sweep already ended (" << state
        << "); its results from the store:\n\n";
    if (state != "SWEEP_STATE_SUCCEEDED") exit_code = kExitError;
  }
  if (const int code = worker.Poll(); code >= 0) {
    return ChildFailed(worker, code);
  }

  // 5. Results and the plot.
  int results = RunNested(context, {"results", sweep_id}, server, &out);
  if (results == kExitOk) {
    // The baselines have no rank: compare them with LoRA as a whole too.
    results = RunNested(
        context,
        {"results", sweep_id, "--table", "ablation", "--group-by", "trainable"},
        server, &out);
  }
  const std::string svg = dir + "/ablation.svg";
  const int plot =
      RunNested(context, {"plot", sweep_id, "-o", svg}, server, &out);
  if (results != kExitOk) exit_code = results;
  if (plot != kExitOk) exit_code = plot;
  out << "\nplot: " << svg << "\nsweep file: " << sweep_file
      << "\nre-run `loractl demo" << (quick ? " --quick" : "") << " --dir "
      << dir << "` to print these again without training anything\n";
  out.flush();
  return exit_code;
}

}  // namespace

Command DemoCommand() {
  Command command;
  command.spec.name = "demo";
  command.spec.summary =
      "Run the rank-ablation demo with a local lorad and worker";
  command.spec.description =
      "Pretrains a small RoBERTa base model once (DIR/base, reused after), "
      "starts lorad and\n"
      "one lora-worker on 127.0.0.1 (their database, artifacts and folders "
      "under DIR),\n"
      "submits the sweep — LoRA on query and value with r = 1, 2, 4, 8 "
      "(alpha 16,\n"
      "sequence length 64) plus head-only and full fine-tuning, on Pang & "
      "Lee polarity —\n"
      "watches it, prints the results tables, writes DIR/ablation.svg and "
      "stops the\n"
      "children. Running it again reuses the base model and the sweep. The "
      "lorad,\n"
      "lora-worker and lora-train binaries are found next to loractl: "
      "`bazel build\n"
      "//loractl:demo` builds them all.\n";
  command.spec.flags = {
      {"quick", 0, false, "",
       "a tiny model and 6 steps per run: about a minute (for tests)"},
      {"dir", 0, true, "DIR",
       "the demo's folder (default ~/.cache/lora-sweep/demo)"},
  };
  command.spec.examples = {
      "loractl demo",
      "loractl demo --quick --dir /tmp/lora-demo",
      "bazel run //loractl:demo -- --quick",
  };
  command.run = Demo;
  return command;
}

}  // namespace lora::loractl
