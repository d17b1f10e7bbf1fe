// The whole system with real processes on 127.0.0.1: lorad (port 0, a SQLite
// file and an artifact root under $TEST_TMPDIR), two lora-worker processes
// with their own --work_dir and --cache_dir (and dataset cache: they share no
// disk), and the lora-train children the workers start. Sweeps of four tiny
// roberta-tiny runs are submitted over SweepService, and the tests check
// what the coordinator ends up holding after normal completion, a worker's
// kill -9, a training child's kill -9, lorad's kill -9 and restart, and a
// cancellation.
//
// Timing is controlled by freezing training children (SIGSTOP) at a chosen
// point: a tiny run trains a step in about 10 ms, far faster than the
// worker's reporting, so "mid-run" only exists while a child is held. A
// frozen child is a slow child; nothing else about the run changes.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/lorad_process.h"
#include "tests/integration/test_clients.h"

extern char** environ;

namespace lora::integration {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

// Steps of the runs that are killed or frozen: long enough that a child
// frozen just after its first checkpoint still has most of its run ahead.
constexpr int kLongRunSteps = 40;
constexpr int kShortRunSteps = 16;

// Four runs: lora.rank [1, 2] x seed [0, 1].
std::string SweepYaml(const std::string& name, int max_steps,
                      int max_attempts) {
  return absl::StrCat("name: ", name, R"(
model: roberta-tiny
task: polarity
parameters:
  lora.rank: [1, 2]
  seed: [0, 1]
fixed:
  epochs: 1
  max_steps: )",
                      max_steps, R"(
  batch_size: 8
  max_seq_len: 32
  log_every_steps: 1
  checkpoint_every_steps: 4
max_attempts: )",
                      max_attempts, "\n");
}

std::string Runfile(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".", "/",
                      workspace != nullptr ? workspace : "__main__", "/", path);
}

std::string ReadAll(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

std::string Tail(const std::string& text, size_t bytes = 6000) {
  return text.size() <= bytes ? text : text.substr(text.size() - bytes);
}

// Polls `done` every `period` until it holds or `timeout` passes.
bool WaitUntil(const std::function<bool()>& done, absl::Duration timeout,
               absl::Duration period = absl::Milliseconds(20)) {
  const absl::Time give_up = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(period);
  }
  return true;
}

// --- Processes seen through /proc. ---

// The state letter of /proc/<pid>/stat ('R', 'S', 'T', 'Z', ...); '\0' when
// the process does not exist.
char ProcessState(pid_t pid) {
  const std::string stat = ReadAll(absl::StrCat("/proc/", pid, "/stat"));
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return '\0';
  return stat[paren + 2];
}

// Gone, or a zombie nobody reaped yet (its training is over either way).
bool ProcessGone(pid_t pid) {
  const char state = ProcessState(pid);
  return state == '\0' || state == 'Z' || state == 'X';
}

// Whether `signal` is pending (queued, not yet delivered) for the process,
// as it is for a stopped one.
bool SignalPending(pid_t pid, int signal) {
  const std::string status = ReadAll(absl::StrCat("/proc/", pid, "/status"));
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (!absl::StartsWith(line, "ShdPnd:") &&
        !absl::StartsWith(line, "SigPnd:")) {
      continue;
    }
    uint64_t mask = 0;
    if (absl::SimpleHexAtoi(absl::StripAsciiWhitespace(line.substr(7)),
                            &mask) &&
        (mask & (uint64_t{1} << (signal - 1))) != 0) {
      return true;
    }
  }
  return false;
}

// A lora-train child of a worker, found by its --output-dir
// (<work_dir>/<run id>/output).
struct TrainChild {
  pid_t pid = 0;
  std::string run_id;
  std::string output_dir;
};

std::vector<TrainChild> TrainChildren(const std::string& work_dir) {
  std::vector<TrainChild> children;
  const std::string prefix = work_dir + "/";
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc", error)) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    const std::string cmdline = ReadAll(entry.path().string() + "/cmdline");
    const std::vector<std::string> argv =
        absl::StrSplit(cmdline, '\0', absl::SkipEmpty());
    if (argv.size() < 2 || !absl::EndsWith(argv[0], "lora-train") ||
        argv[1] != "train") {
      continue;
    }
    for (size_t i = 0; i + 1 < argv.size(); ++i) {
      if (argv[i] != "--output-dir" || !absl::StartsWith(argv[i + 1], prefix)) {
        continue;
      }
      if (ProcessGone(pid)) break;
      TrainChild child;
      child.pid = pid;
      child.output_dir = argv[i + 1];
      std::string rest = child.output_dir.substr(prefix.size());
      child.run_id = rest.substr(0, rest.find('/'));
      children.push_back(std::move(child));
      break;
    }
  }
  return children;
}

void KillTrainChildren(const std::string& work_dir) {
  for (const TrainChild& child : TrainChildren(work_dir)) {
    ::kill(child.pid, SIGKILL);
  }
}

// What a child's metrics.jsonl says so far.
struct TrainProgress {
  int64_t last_step = 0;        // highest "step" record
  int64_t last_checkpoint = 0;  // highest "checkpoint" record
};

TrainProgress ReadProgress(const std::string& output_dir) {
  TrainProgress progress;
  const std::string text = ReadAll(output_dir + "/metrics.jsonl");
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    const nlohmann::json record =
        nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    if (!record.is_object() || !record.contains("type") ||
        !record.contains("step") || !record["step"].is_number_integer()) {
      continue;  // a partial last line
    }
    const int64_t step = record["step"].get<int64_t>();
    if (record["type"] == "step") {
      progress.last_step = std::max(progress.last_step, step);
    } else if (record["type"] == "checkpoint") {
      progress.last_checkpoint = std::max(progress.last_checkpoint, step);
    }
  }
  return progress;
}

// The optimizer step a training checkpoint holds: lora_core writes it into
// the safetensors header (8 bytes of little-endian length, then JSON) as
// __metadata__.lora_sweep_training_state.step.
absl::StatusOr<int64_t> StepInCheckpoint(const std::string& safetensors) {
  if (safetensors.size() < 8) return absl::DataLossError("no header");
  uint64_t size = 0;
  for (int i = 7; i >= 0; --i) {
    size = (size << 8) | static_cast<unsigned char>(safetensors[i]);
  }
  if (size > safetensors.size() - 8) return absl::DataLossError("short file");
  const nlohmann::json header =
      nlohmann::json::parse(safetensors.substr(8, size), nullptr, false);
  if (!header.is_object() || !header.contains("__metadata__") ||
      !header["__metadata__"].contains("lora_sweep_training_state") ||
      !header["__metadata__"]["lora_sweep_training_state"].is_string()) {
    return absl::DataLossError("no lora_sweep_training_state metadata");
  }
  const nlohmann::json state = nlohmann::json::parse(
      header["__metadata__"]["lora_sweep_training_state"].get<std::string>(),
      nullptr, false);
  if (!state.is_object() || !state.contains("step") ||
      !state["step"].is_number_integer()) {
    return absl::DataLossError("no step in lora_sweep_training_state");
  }
  return state["step"].get<int64_t>();
}

// A process's environment as one "NAME=value" string per entry.
std::vector<std::string> ProcessEnvironment(pid_t pid) {
  const std::string text = ReadAll(absl::StrCat("/proc/", pid, "/environ"));
  return absl::StrSplit(text, '\0', absl::SkipEmpty());
}

struct FrozenChild {
  TrainChild child;
  TrainProgress progress;  // where it stopped
};

// Whether a stopped child is where a test wants it: past a checkpoint,
// before its last step, with the checkpoint folder holding the state of
// the last checkpoint line (not a later one saved but not yet announced).
bool HeldMidRunAfterCheckpoint(const std::string& output_dir,
                               const TrainProgress& progress,
                               int64_t max_step) {
  if (progress.last_checkpoint < 1 ||
      progress.last_step <= progress.last_checkpoint ||
      progress.last_step >= max_step) {
    return false;
  }
  absl::StatusOr<int64_t> saved = StepInCheckpoint(
      ReadAll(output_dir + "/checkpoint/training_state.safetensors"));
  return saved.ok() && *saved == progress.last_checkpoint;
}

// Waits for one lora-train child under each of `work_dirs` and freezes each
// (SIGSTOP) as soon as it has written a checkpoint and a step after it, and
// before step `max_step`. All work dirs are watched in one loop, so no child
// runs to its end while another is waited for. Fails the test after
// `timeout`.
std::vector<FrozenChild> FreezeAfterCheckpoint(
    const std::vector<std::string>& work_dirs, int64_t max_step,
    absl::Duration timeout = absl::Seconds(90)) {
  std::vector<std::optional<FrozenChild>> frozen(work_dirs.size());
  const absl::Time give_up = absl::Now() + timeout;
  while (true) {
    bool all = true;
    for (size_t i = 0; i < work_dirs.size(); ++i) {
      if (frozen[i].has_value()) continue;
      all = false;
      for (const TrainChild& child : TrainChildren(work_dirs[i])) {
        const TrainProgress progress = ReadProgress(child.output_dir);
        if (progress.last_checkpoint < 1 ||
            progress.last_step <= progress.last_checkpoint) {
          continue;
        }
        if (::kill(child.pid, SIGSTOP) != 0) continue;
        // Stopped for sure before the files are read again: its writes are
        // complete and nothing follows them.
        if (!WaitUntil([&] { return ProcessState(child.pid) == 'T'; },
                       absl::Seconds(10), absl::Milliseconds(1))) {
          ADD_FAILURE() << "lora-train " << child.pid << " did not stop";
          continue;
        }
        const TrainProgress held = ReadProgress(child.output_dir);
        if (!HeldMidRunAfterCheckpoint(child.output_dir, held, max_step)) {
          // Stopped at a bad moment (just after a checkpoint, or too late):
          // let it go on and try again.
          ::kill(child.pid, SIGCONT);
          continue;
        }
        frozen[i] = FrozenChild{child, held};
        break;
      }
    }
    if (all) break;
    if (absl::Now() > give_up) {
      ADD_FAILURE() << "no lora-train child could be held mid-run after a "
                    << "checkpoint within " << absl::FormatDuration(timeout);
      break;
    }
    absl::SleepFor(absl::Milliseconds(2));
  }
  std::vector<FrozenChild> result;
  for (const auto& child : frozen) {
    if (child.has_value()) result.push_back(*child);
  }
  return result;
}

// --- lora-worker as a child process. ---

struct WorkerOptions {
  std::string name;
  // Holds work/, cache/, dataset-cache/ and worker.log.
  std::string dir;
  std::string coordinator;  // host:port
  std::string stop_grace = "2s";
  std::string hang_timeout = "120s";
  int threads_per_job = 1;
};

class WorkerProcess {
 public:
  static absl::StatusOr<std::unique_ptr<WorkerProcess>> Start(
      const WorkerOptions& options) {
    std::unique_ptr<WorkerProcess> worker(new WorkerProcess());
    worker->work_dir_ = options.dir + "/work";
    worker->log_path_ = options.dir + "/worker.log";
    std::filesystem::create_directories(worker->work_dir_);
    std::filesystem::create_directories(options.dir + "/cache");
    std::vector<std::string> args = {
        Runfile("worker/lora-worker"),
        "--coordinator=" + options.coordinator,
        "--name=" + options.name,
        "--max_jobs=1",
        absl::StrCat("--threads_per_job=", options.threads_per_job),
        "--work_dir=" + worker->work_dir_,
        "--cache_dir=" + options.dir + "/cache",
        "--http=",
        "--lora_train=" + Runfile("lora_core/lora-train"),
        "--hang_timeout=" + options.hang_timeout,
        "--stop_grace=" + options.stop_grace,
    };
    // The children's tokenised-dataset cache too is the worker's own.
    std::vector<std::string> env;
    for (char** entry = environ; *entry != nullptr; ++entry) {
      if (!absl::StartsWith(*entry, "LORA_SWEEP_CACHE=")) env.push_back(*entry);
    }
    env.push_back("LORA_SWEEP_CACHE=" + options.dir + "/dataset-cache");
    std::vector<char*> argv, envp;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    for (std::string& entry : env) envp.push_back(entry.data());
    envp.push_back(nullptr);

    const int log_fd = ::open(worker->log_path_.c_str(),
                              O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      return absl::InternalError("cannot open " + worker->log_path_);
    }
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
      ::close(log_fd);
      return absl::InternalError(absl::StrCat("fork: errno ", errno));
    }
    if (pid == 0) {
      // The worker never outlives the test (its children may: see Kill()).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(126);
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(log_fd);
    worker->pid_ = pid;
    return worker;
  }

  // kill -9s the worker and every training child it left.
  ~WorkerProcess() {
    Kill();
    KillTrainChildren(work_dir_);
  }

  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  // kill -9 and reap. Its lora-train children live on, in their own
  // process groups, as they would if the worker crashed.
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int wait_status = 0;
    while (::waitpid(pid_, &wait_status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

  // Sends `signal` to the worker (not to its children).
  void Signal(int signal) {
    if (pid_ > 0) ::kill(pid_, signal);
  }

  // Still running (not exited, not killed).
  bool Alive() {
    if (pid_ <= 0) return false;
    int wait_status = 0;
    if (::waitpid(pid_, &wait_status, WNOHANG) == pid_) {
      exit_status_ = wait_status;
      pid_ = -1;
      return false;
    }
    return true;
  }

  const std::string& work_dir() const { return work_dir_; }
  std::string Log() const { return ReadAll(log_path_); }
  int exit_status() const { return exit_status_; }

 private:
  WorkerProcess() = default;

  pid_t pid_ = -1;
  int exit_status_ = -1;
  std::string work_dir_;
  std::string log_path_;
};

// --- What the coordinator holds. ---

// The "loss" points of one run as WatchSweep replays them:
// attempt -> step -> values (more than one value = a duplicate).
using LossSeries = std::map<int32_t, std::map<int64_t, std::vector<double>>>;

std::map<std::string, LossSeries> LossByRun(
    const std::vector<v1::SweepEvent>& events) {
  std::map<std::string, LossSeries> series;
  for (const v1::SweepEvent& event : events) {
    if (!event.has_metric() || event.metric().point().name() != "loss") {
      continue;
    }
    const v1::RunMetric& metric = event.metric();
    series[metric.run_id()][metric.attempt()][metric.point().step()].push_back(
        metric.point().value());
  }
  return series;
}

// The stored series as a reader sees it: each step from its highest
// attempt. Checks that no (attempt, step) was stored twice, that every step
// lies in 1..max_steps, and that none of 1..max_steps is missing.
void ExpectCompleteLossSeries(const std::string& run_id,
                              const LossSeries& series, int64_t max_steps) {
  std::map<int64_t, int32_t> attempt_of_step;
  for (const auto& [attempt, steps] : series) {
    for (const auto& [step, values] : steps) {
      EXPECT_EQ(values.size(), 1u)
          << "run " << run_id << " attempt " << attempt << " step " << step
          << " stored " << values.size() << " times";
      EXPECT_GE(step, 1) << "run " << run_id;
      EXPECT_LE(step, max_steps) << "run " << run_id;
      attempt_of_step[step] = std::max(attempt_of_step[step], attempt);
    }
  }
  std::vector<int64_t> missing;
  for (int64_t step = 1; step <= max_steps; ++step) {
    if (attempt_of_step.count(step) == 0) missing.push_back(step);
  }
  EXPECT_TRUE(missing.empty()) << "run " << run_id << " misses loss at steps "
                               << absl::StrJoin(missing, ",");
  EXPECT_EQ(attempt_of_step.size(), static_cast<size_t>(max_steps))
      << "run " << run_id;
}

// The steps one attempt reported, in order.
std::vector<int64_t> StepsOf(const LossSeries& series, int32_t attempt) {
  std::vector<int64_t> steps;
  auto found = series.find(attempt);
  if (found == series.end()) return steps;
  for (const auto& [step, values] : found->second) steps.push_back(step);
  return steps;
}

std::vector<int64_t> Range(int64_t first, int64_t last) {
  std::vector<int64_t> steps;
  for (int64_t step = first; step <= last; ++step) steps.push_back(step);
  return steps;
}

// Runs of the sweep leased to each worker id, from RunStateChange events:
// worker id -> run ids, in lease order.
std::map<std::string, std::vector<std::string>> LeasesByWorker(
    const std::vector<v1::SweepEvent>& events) {
  std::map<std::string, std::vector<std::string>> leases;
  for (const v1::SweepEvent& event : events) {
    if (event.has_run_state() &&
        event.run_state().state() == v1::RUN_STATE_LEASED) {
      leases[event.run_state().worker_id()].push_back(
          event.run_state().run_id());
    }
  }
  return leases;
}

absl::StatusOr<std::map<std::string, std::string>> DownloadFiles(
    v1::SweepService::Stub* stub, const std::string& artifact_id) {
  v1::DownloadArtifactRequest request;
  request.set_artifact_id(artifact_id);
  grpc::ClientContext context;
  PrepareContext(&context, "", absl::Seconds(30));
  std::unique_ptr<grpc::ClientReader<v1::DownloadArtifactResponse>> reader =
      stub->DownloadArtifact(&context, request);
  std::map<std::string, std::string> files;
  v1::DownloadArtifactResponse part;
  bool manifest_first = false;
  bool first = true;
  while (reader->Read(&part)) {
    if (first) manifest_first = part.has_manifest();
    first = false;
    if (part.has_chunk()) files[part.chunk().path()] += part.chunk().data();
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat("DownloadArtifact ", artifact_id,
                                               ": ", status.error_message()));
  }
  if (!manifest_first) {
    return absl::DataLossError("DownloadArtifact sent no manifest first");
  }
  return files;
}

class WorkerIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* info =
        ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = FreshTestDir(absl::StrCat("worker_it_", info->name()));
  }

  void TearDown() override {
    // Workers (and their children) first: lorad's shutdown waits for
    // connected clients to go away.
    const bool failed = HasFailure();
    for (auto& [name, worker] : workers_) {
      if (failed) {
        std::cerr << "---- log of " << name << " ----\n"
                  << Tail(worker->Log()) << "\n";
      }
      worker.reset();
    }
    sweeps_.reset();
    if (lorad_ != nullptr) {
      if (failed) {
        std::cerr << "---- lorad log ----\n" << Tail(lorad_->Log()) << "\n";
      }
      absl::Status stopped = lorad_->Stop();
      EXPECT_TRUE(stopped.ok()) << stopped;
    }
  }

  // lorad on 127.0.0.1 (`port` 0 = any) on dir_/lorad: the same database
  // and artifacts on every start.
  void StartLorad(const std::string& lease_ttl, int port = 0) {
    LoradOptions options;
    options.dir = dir_ + "/lorad";
    options.heartbeat_interval = "300ms";
    options.lease_ttl = lease_ttl;
    if (port != 0) {
      // After LoradProcess's own --listen: the last one counts.
      options.extra_flags.push_back(absl::StrCat("--listen=127.0.0.1:", port));
    }
    absl::StatusOr<std::unique_ptr<LoradProcess>> lorad =
        LoradProcess::Start(options);
    ASSERT_TRUE(lorad.ok()) << lorad.status();
    lorad_ = std::move(*lorad);
    if (port != 0) {
      ASSERT_EQ(lorad_->grpc_port(), port);
    }
    sweeps_ = lorad_->SweepStub();
  }

  // Workers "worker-a" and "worker-b", each with its own folders and
  // --max_jobs=1; waits until lorad lists both as up and records their ids.
  void StartWorkers(const std::string& hang_timeout = "120s",
                    int threads_per_job = 1) {
    for (const std::string name : {"worker-a", "worker-b"}) {
      WorkerOptions options;
      options.name = name;
      options.dir = dir_ + "/" + name;
      options.coordinator = lorad_->grpc_address();
      options.hang_timeout = hang_timeout;
      options.threads_per_job = threads_per_job;
      absl::StatusOr<std::unique_ptr<WorkerProcess>> worker =
          WorkerProcess::Start(options);
      ASSERT_TRUE(worker.ok()) << worker.status();
      workers_[name] = std::move(*worker);
    }
    const bool registered = WaitUntil(
        [&] {
          v1::ListWorkersRequest request;
          v1::ListWorkersResponse response;
          grpc::ClientContext context;
          PrepareContext(&context, "");
          if (!sweeps_->ListWorkers(&context, request, &response).ok()) {
            return false;
          }
          for (const v1::Worker& worker : response.workers()) {
            if (worker.up()) worker_ids_[worker.name()] = worker.worker_id();
          }
          return worker_ids_.size() == 2;
        },
        absl::Seconds(30), absl::Milliseconds(50));
    ASSERT_TRUE(registered) << "workers did not register";
  }

  WorkerProcess* worker(const std::string& name) {
    return workers_.at(name).get();
  }

  // With the workers started, submits a sweep and returns the environment
  // of worker-a's first lora-train child (empty, with a test failure, if
  // none starts within a minute).
  std::vector<std::string> FirstChildEnvironment(
      const std::string& sweep_name) {
    Submit(sweep_name, kLongRunSteps, 1);
    std::vector<TrainChild> children;
    const bool started = WaitUntil(
        [&] {
          children = TrainChildren(worker("worker-a")->work_dir());
          return !children.empty();
        },
        absl::Seconds(60), absl::Milliseconds(20));
    EXPECT_TRUE(started) << "no lora-train child started";
    return started ? ProcessEnvironment(children[0].pid)
                   : std::vector<std::string>();
  }

  // Submits a four-run sweep; returns its id.
  std::string Submit(const std::string& name, int max_steps, int max_attempts) {
    v1::SubmitSweepResponse submitted;
    const grpc::Status status = SubmitYaml(
        sweeps_.get(), SweepYaml(name, max_steps, max_attempts), &submitted);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(submitted.runs_size(), 4);
    return submitted.sweep().sweep_id();
  }

  absl::Status WaitForSweep(const std::string& sweep_id, v1::SweepState state) {
    return WaitForSweepState(sweeps_.get(), sweep_id, state,
                             absl::Seconds(150));
  }

  // Every event of the sweep, metrics included, replayed from the start.
  std::vector<v1::SweepEvent> AllEvents(const std::string& sweep_id) {
    WatchResult watched =
        WatchToEnd(sweeps_.get(), sweep_id, 0,
                   /*include_metrics=*/true, absl::Seconds(60));
    EXPECT_TRUE(watched.status.ok()) << watched.status.error_message();
    return watched.events;
  }

  v1::Run Run(const std::string& run_id) {
    absl::StatusOr<v1::Run> run = GetRun(sweeps_.get(), run_id);
    EXPECT_TRUE(run.ok()) << run.status();
    return run.ok() ? *run : v1::Run();
  }

  std::string dir_;
  std::unique_ptr<LoradProcess> lorad_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
  std::map<std::string, std::unique_ptr<WorkerProcess>> workers_;
  std::map<std::string, std::string> worker_ids_;  // name -> id
};

TEST_F(WorkerIntegrationTest,
       TwoWorkersCompleteSweepWithFullSeriesAndAdapters) {
  ASSERT_NO_FATAL_FAILURE(StartLorad("3s"));
  ASSERT_NO_FATAL_FAILURE(StartWorkers());
  const std::string sweep_id = Submit("worker-it-complete", kShortRunSteps, 2);
  ASSERT_TRUE(WaitForSweep(sweep_id, v1::SWEEP_STATE_SUCCEEDED).ok())
      << WaitForSweep(sweep_id, v1::SWEEP_STATE_SUCCEEDED);

  absl::StatusOr<std::vector<v1::Run>> runs =
      ListAllRuns(sweeps_.get(), sweep_id);
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 4u);
  const std::vector<v1::SweepEvent> events = AllEvents(sweep_id);
  const std::map<std::string, LossSeries> loss = LossByRun(events);
  std::set<std::string> adapter_ids;
  for (const v1::Run& listed : *runs) {
    const v1::Run run = Run(listed.run_id());
    EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.run_id();
    EXPECT_EQ(run.attempt(), 1) << run.run_id();
    EXPECT_EQ(run.step(), kShortRunSteps) << run.run_id();
    EXPECT_FALSE(run.adapter_artifact_id().empty()) << run.run_id();
    EXPECT_FALSE(run.checkpoint_artifact_id().empty()) << run.run_id();
    EXPECT_TRUE(run.latest_metrics().count("val_accuracy")) << run.run_id();
    adapter_ids.insert(run.adapter_artifact_id());
    ASSERT_TRUE(loss.count(run.run_id())) << "no loss points: " << run.run_id();
    const LossSeries& series = loss.at(run.run_id());
    ExpectCompleteLossSeries(run.run_id(), series, kShortRunSteps);
    EXPECT_EQ(StepsOf(series, 1), Range(1, kShortRunSteps)) << run.run_id();
    EXPECT_EQ(series.size(), 1u) << run.run_id() << ": one attempt only";
  }
  EXPECT_EQ(adapter_ids.size(), 4u) << "every run has its own adapter";

  // Both workers trained, each in its own work dir only.
  const auto leases = LeasesByWorker(events);
  for (const auto& [name, id] : worker_ids_) {
    ASSERT_TRUE(leases.count(id)) << name << " trained nothing";
    for (const std::string& run_id : leases.at(id)) {
      EXPECT_TRUE(std::filesystem::exists(worker(name)->work_dir() + "/" +
                                          run_id + "/output/metrics.jsonl"))
          << name << " " << run_id;
    }
    for (const auto& entry :
         std::filesystem::directory_iterator(worker(name)->work_dir())) {
      const std::string run_id = entry.path().filename().string();
      EXPECT_NE(std::find(leases.at(id).begin(), leases.at(id).end(), run_id),
                leases.at(id).end())
          << name << " holds a folder of a run it was not leased: " << run_id;
    }
  }

  // The coordinator stores the four adapters, one per run.
  v1::ListArtifactsRequest list;
  list.set_kind(v1::ARTIFACT_KIND_ADAPTER);
  list.set_page_size(100);
  v1::ListArtifactsResponse listed;
  grpc::ClientContext context;
  PrepareContext(&context, "");
  ASSERT_TRUE(sweeps_->ListArtifacts(&context, list, &listed).ok());
  ASSERT_EQ(listed.artifacts_size(), 4);
  std::set<std::string> listed_ids;
  for (const v1::Artifact& artifact : listed.artifacts()) {
    listed_ids.insert(artifact.artifact_id());
    EXPECT_EQ(artifact.kind(), v1::ARTIFACT_KIND_ADAPTER);
  }
  EXPECT_EQ(listed_ids, adapter_ids);

  // Every checkpoint the workers reported holds the step it was reported
  // at (the name says which), never a later one: a resumed attempt starts
  // after that step, and the points up to it are all acknowledged.
  v1::ListArtifactsRequest list_checkpoints;
  list_checkpoints.set_kind(v1::ARTIFACT_KIND_TRAINING_CHECKPOINT);
  list_checkpoints.set_page_size(1000);
  v1::ListArtifactsResponse checkpoints;
  grpc::ClientContext checkpoints_context;
  PrepareContext(&checkpoints_context, "");
  ASSERT_TRUE(
      sweeps_
          ->ListArtifacts(&checkpoints_context, list_checkpoints, &checkpoints)
          .ok());
  EXPECT_GE(checkpoints.artifacts_size(), 4);
  for (const v1::Artifact& checkpoint : checkpoints.artifacts()) {
    absl::StatusOr<std::map<std::string, std::string>> files =
        DownloadFiles(sweeps_.get(), checkpoint.artifact_id());
    ASSERT_TRUE(files.ok()) << files.status();
    ASSERT_TRUE(files->count("training_state.safetensors"))
        << checkpoint.name();
    absl::StatusOr<int64_t> step =
        StepInCheckpoint(files->at("training_state.safetensors"));
    ASSERT_TRUE(step.ok()) << step.status();
    EXPECT_EQ(checkpoint.name(), absl::StrCat("checkpoint-step-", *step))
        << "run " << checkpoint.run_id() << ": a checkpoint reported at one "
        << "step holds the state of step " << *step;
  }

  // One adapter, downloaded: PEFT layout with the run's rank.
  const v1::Run first = Run(runs->front().run_id());
  absl::StatusOr<std::map<std::string, std::string>> files =
      DownloadFiles(sweeps_.get(), first.adapter_artifact_id());
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_TRUE(files->count("adapter_config.json"))
      << "files: " << files->size();
  EXPECT_TRUE(files->count("adapter_model.safetensors"));
  const nlohmann::json config =
      nlohmann::json::parse(files->at("adapter_config.json"), nullptr, false);
  ASSERT_TRUE(config.is_object());
  EXPECT_EQ(config.value("peft_type", ""), "LORA");
  EXPECT_EQ(config.value("r", -1), first.config().lora().rank());
}

TEST_F(WorkerIntegrationTest, KilledWorkersRunResumesElsewhereFromCheckpoint) {
  ASSERT_NO_FATAL_FAILURE(StartLorad("3s"));
  ASSERT_NO_FATAL_FAILURE(StartWorkers());
  const std::string sweep_id =
      Submit("worker-it-worker-kill", kLongRunSteps, 2);
  WorkerProcess* a = worker("worker-a");

  // Worker A's child, held just after a checkpoint.
  std::vector<FrozenChild> frozen =
      FreezeAfterCheckpoint({a->work_dir()}, kLongRunSteps);
  ASSERT_EQ(frozen.size(), 1u);
  const FrozenChild held = frozen[0];
  const std::string run_id = held.child.run_id;
  const int64_t checkpoint_step = held.progress.last_checkpoint;
  const int64_t frozen_step = held.progress.last_step;
  ASSERT_LT(frozen_step, kLongRunSteps);

  // The coordinator holds the checkpoint and every step before the freeze.
  std::string checkpoint_id;
  ASSERT_TRUE(WaitUntil(
      [&] {
        const v1::Run run = Run(run_id);
        checkpoint_id = run.checkpoint_artifact_id();
        return !checkpoint_id.empty() && run.step() == frozen_step;
      },
      absl::Seconds(30)))
      << "run " << run_id << " never reported its checkpoint at step "
      << checkpoint_step << " and step " << frozen_step;
  EXPECT_GT(Run(run_id).step(), checkpoint_step);
  {
    v1::GetArtifactRequest request;
    request.set_artifact_id(checkpoint_id);
    v1::Artifact artifact;
    grpc::ClientContext context;
    PrepareContext(&context, "");
    ASSERT_TRUE(sweeps_->GetArtifact(&context, request, &artifact).ok());
    EXPECT_EQ(artifact.kind(), v1::ARTIFACT_KIND_TRAINING_CHECKPOINT);
    EXPECT_EQ(artifact.run_id(), run_id);
    EXPECT_EQ(artifact.name(),
              absl::StrCat("checkpoint-step-", checkpoint_step));
  }

  // The machine dies: the worker and its child.
  a->Kill();
  ASSERT_EQ(::kill(held.child.pid, SIGKILL), 0);
  ASSERT_TRUE(WaitUntil([&] { return ProcessGone(held.child.pid); },
                        absl::Seconds(10)));

  ASSERT_TRUE(WaitForSweep(sweep_id, v1::SWEEP_STATE_SUCCEEDED).ok())
      << WaitForSweep(sweep_id, v1::SWEEP_STATE_SUCCEEDED);
  const v1::Run run = Run(run_id);
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(run.attempt(), 2);
  EXPECT_THAT(run.error(), HasSubstr("expired"));
  EXPECT_FALSE(run.adapter_artifact_id().empty());

  const std::vector<v1::SweepEvent> events = AllEvents(sweep_id);
  // Attempt 2 went to worker B, which fetched the checkpoint into its own
  // cache (the workers share no disk) and continued the step counter.
  bool leased_to_b = false;
  for (const v1::SweepEvent& event : events) {
    if (event.has_run_state() && event.run_state().run_id() == run_id &&
        event.run_state().state() == v1::RUN_STATE_LEASED &&
        event.run_state().attempt() == 2) {
      leased_to_b = event.run_state().worker_id() == worker_ids_["worker-b"];
    }
  }
  EXPECT_TRUE(leased_to_b) << "attempt 2 of " << run_id << " not on worker-b";
  const LossSeries series = LossByRun(events)[run_id];
  EXPECT_EQ(StepsOf(series, 1), Range(1, frozen_step));
  const std::vector<int64_t> resumed = StepsOf(series, 2);
  ASSERT_FALSE(resumed.empty());
  EXPECT_EQ(resumed.front(), checkpoint_step + 1)
      << "attempt 2 did not resume from the checkpoint at step "
      << checkpoint_step;
  EXPECT_EQ(resumed, Range(checkpoint_step + 1, kLongRunSteps));
  ExpectCompleteLossSeries(run_id, series, kLongRunSteps);
  // Resuming is exact: the steps both attempts trained have equal losses.
  for (int64_t step = checkpoint_step + 1; step <= frozen_step; ++step) {
    if (series.at(1).count(step) && series.at(2).count(step)) {
      EXPECT_EQ(series.at(1).at(step).front(), series.at(2).at(step).front())
          << "loss at step " << step;
    }
  }
  // The other runs were not disturbed.
  for (const auto& [other, other_series] : LossByRun(events)) {
    if (other == run_id) continue;
    ExpectCompleteLossSeries(other, other_series, kLongRunSteps);
  }
  EXPECT_TRUE(worker("worker-b")->Alive());
}

TEST_F(WorkerIntegrationTest,
       KilledChildFailsRunWithoutRetriesAndWorkerGoesOn) {
  ASSERT_NO_FATAL_FAILURE(StartLorad("3s"));
  ASSERT_NO_FATAL_FAILURE(StartWorkers());
  const std::string sweep_id =
      Submit("worker-it-child-kill-fail", kLongRunSteps, 1);
  WorkerProcess* a = worker("worker-a");

  std::vector<FrozenChild> frozen =
      FreezeAfterCheckpoint({a->work_dir()}, kLongRunSteps);
  ASSERT_EQ(frozen.size(), 1u);
  const std::string run_id = frozen[0].child.run_id;
  ASSERT_EQ(::kill(frozen[0].child.pid, SIGKILL), 0);

  ASSERT_TRUE(WaitForSweep(sweep_id, v1::SWEEP_STATE_FAILED).ok())
      << WaitForSweep(sweep_id, v1::SWEEP_STATE_FAILED);
  const v1::Run run = Run(run_id);
  EXPECT_EQ(run.state(), v1::RUN_STATE_FAILED);
  EXPECT_EQ(run.attempt(), 1);
  EXPECT_THAT(run.error(), HasSubstr("killed by signal 9"));
  EXPECT_TRUE(run.adapter_artifact_id().empty());

  absl::StatusOr<std::vector<v1::Run>> runs =
      ListAllRuns(sweeps_.get(), sweep_id);
  ASSERT_TRUE(runs.ok()) << runs.status();
  int succeeded = 0;
  for (const v1::Run& other : *runs) {
    if (other.run_id() == run_id) continue;
    EXPECT_EQ(other.state(), v1::RUN_STATE_SUCCEEDED) << other.run_id();
    succeeded += other.state() == v1::RUN_STATE_SUCCEEDED;
  }
  EXPECT_EQ(succeeded, 3);

  // Worker A is still up and leased another run after the failure.
  EXPECT_TRUE(a->Alive()) << "worker-a exited with status " << a->exit_status();
  const std::vector<v1::SweepEvent> events = AllEvents(sweep_id);
  int64_t failed_at = -1;
  bool later_lease = false;
  for (const v1::SweepEvent& event : events) {
    if (!event.has_run_state()) continue;
    const v1::RunStateChange& change = event.run_state();
    if (change.run_id() == run_id && change.state() == v1::RUN_STATE_FAILED) {
      failed_at = event.sequence();
      EXPECT_THAT(change.error(), HasSubstr("killed by signal 9"));
    }
    if (failed_at >= 0 && change.state() == v1::RUN_STATE_LEASED &&
        change.worker_id() == worker_ids_["worker-a"]) {
      later_lease = true;
      EXPECT_NE(change.run_id(), run_id);
    }
  }
  EXPECT_GE(failed_at, 0);
  EXPECT_TRUE(later_lease) << "worker-a took no job after its child died";
}

TEST_F(WorkerIntegrationTest, KilledChildIsRetriedAndRunCompletes) {
  ASSERT_NO_FATAL_FAILURE(StartLorad("3s"));
  ASSERT_NO_FATAL_FAILURE(StartWorkers());
  const std::string sweep_id =
      Submit("worker-it-child-kill-retry", kLongRunSteps, 2);
  WorkerProcess* a = worker("worker-a");

  std::vector<FrozenChild> frozen =
      FreezeAfterCheckpoint({a->work_dir()}, kLongRunSteps);
  ASSERT_EQ(frozen.size(), 1u);
  const std::string run_id = frozen[0].child.run_id;
  ASSERT_EQ(::kill(frozen[0].child.pid, SIGKILL), 0);

  ASSERT_TRUE(WaitForSweep(sweep_id, v1::SWEEP_STATE_SUCCEEDED).ok())
      << WaitForSweep(sweep_id, v1::SWEEP_STATE_SUCCEEDED);
  const v1::Run run = Run(run_id);
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(run.attempt(), 2);
  // The failed attempt's error stays on record.
  EXPECT_THAT(run.error(), HasSubstr("killed by signal 9"));
  EXPECT_FALSE(run.adapter_artifact_id().empty());
  EXPECT_TRUE(a->Alive()) << "worker-a exited with status " << a->exit_status();

  const std::vector<v1::SweepEvent> events = AllEvents(sweep_id);
  bool retried = false;
  for (const v1::SweepEvent& event : events) {
    if (event.has_run_state() && event.run_state().run_id() == run_id &&
        event.run_state().state() == v1::RUN_STATE_PENDING &&
        event.run_state().attempt() == 2) {
      retried = true;
      EXPECT_THAT(event.run_state().error(), HasSubstr("killed by signal 9"));
    }
  }
  EXPECT_TRUE(retried) << "no PENDING attempt 2 event for " << run_id;
  for (const auto& [id, series] : LossByRun(events)) {
    ExpectCompleteLossSeries(id, series, kLongRunSteps);
  }
}

TEST_F(WorkerIntegrationTest, LoradRestartDuringTrainingLosesNoMetricPoint) {
  // A lease long enough to outlast the restart and the workers' reconnect
  // backoff (up to 2 s): the runs keep attempt 1, so every point written
  // while lorad was down must arrive from the worker's re-sends.
  ASSERT_NO_FATAL_FAILURE(StartLorad("15s"));
  ASSERT_NO_FATAL_FAILURE(StartWorkers());
  const std::string sweep_id =
      Submit("worker-it-lorad-restart", kLongRunSteps, 1);
  const int port = lorad_->grpc_port();

  std::vector<FrozenChild> frozen = FreezeAfterCheckpoint(
      {worker("worker-a")->work_dir(), worker("worker-b")->work_dir()},
      kLongRunSteps);
  ASSERT_EQ(frozen.size(), 2u);
  for (const FrozenChild& held : frozen) {
    ASSERT_TRUE(WaitUntil(
        [&] {
          return Run(held.child.run_id).step() == held.progress.last_step;
        },
        absl::Seconds(30)))
        << held.child.run_id;
  }

  // lorad dies; the children train on while it is down, and finish.
  sweeps_.reset();
  lorad_->Kill();
  for (const FrozenChild& held : frozen) {
    ASSERT_EQ(::kill(held.child.pid, SIGCONT), 0);
  }
  for (const FrozenChild& held : frozen) {
    ASSERT_TRUE(WaitUntil([&] { return ProcessGone(held.child.pid); },
                          absl::Seconds(60)))
        << "lora-train of " << held.child.run_id << " did not finish";
    EXPECT_EQ(ReadProgress(held.child.output_dir).last_step, kLongRunSteps);
  }
  absl::SleepFor(absl::Milliseconds(500));  // the workers' retries fail

  ASSERT_NO_FATAL_FAILURE(StartLorad("15s", port));
  ASSERT_TRUE(WaitForSweep(sweep_id, v1::SWEEP_STATE_SUCCEEDED).ok())
      << WaitForSweep(sweep_id, v1::SWEEP_STATE_SUCCEEDED);

  const std::vector<v1::SweepEvent> events = AllEvents(sweep_id);
  const std::map<std::string, LossSeries> loss = LossByRun(events);
  absl::StatusOr<std::vector<v1::Run>> runs =
      ListAllRuns(sweeps_.get(), sweep_id);
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 4u);
  for (const v1::Run& listed : *runs) {
    const v1::Run run = Run(listed.run_id());
    EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.run_id();
    EXPECT_EQ(run.attempt(), 1) << run.run_id();
    EXPECT_FALSE(run.adapter_artifact_id().empty()) << run.run_id();
    ASSERT_TRUE(loss.count(run.run_id())) << run.run_id();
    ExpectCompleteLossSeries(run.run_id(), loss.at(run.run_id()),
                             kLongRunSteps);
    EXPECT_EQ(StepsOf(loss.at(run.run_id()), 1), Range(1, kLongRunSteps))
        << run.run_id();
  }
  EXPECT_TRUE(worker("worker-a")->Alive());
  EXPECT_TRUE(worker("worker-b")->Alive());
}

TEST_F(WorkerIntegrationTest, CancelledSweepEndsChildrenWithinGrace) {
  ASSERT_NO_FATAL_FAILURE(StartLorad("3s"));
  ASSERT_NO_FATAL_FAILURE(StartWorkers());
  const std::string sweep_id = Submit("worker-it-cancel", kLongRunSteps, 2);

  // Both running children held mid-run; the other two runs are queued.
  std::vector<FrozenChild> frozen = FreezeAfterCheckpoint(
      {worker("worker-a")->work_dir(), worker("worker-b")->work_dir()},
      kLongRunSteps);
  ASSERT_EQ(frozen.size(), 2u);

  v1::CancelSweepRequest request;
  request.set_sweep_id(sweep_id);
  v1::Sweep cancelled;
  grpc::ClientContext context;
  PrepareContext(&context, "");
  ASSERT_TRUE(sweeps_->CancelSweep(&context, request, &cancelled).ok());
  const absl::Time cancel_time = absl::Now();

  // The workers pass the order on as SIGTERM, seen here as pending on the
  // frozen children. The first child is let go as soon as its SIGTERM is
  // there and stops by itself (lora-train checkpoints and exits on
  // SIGTERM); the second stays frozen, like a child that ignores SIGTERM,
  // and must be killed once the grace (--stop_grace=2s) is over.
  const pid_t cooperative = frozen[0].child.pid;
  const pid_t stuck = frozen[1].child.pid;
  std::map<pid_t, absl::Time> term_seen;
  std::map<pid_t, absl::Time> gone;
  const bool all_gone = WaitUntil(
      [&] {
        for (const FrozenChild& held : frozen) {
          const pid_t pid = held.child.pid;
          if (gone.count(pid)) continue;
          if (ProcessGone(pid)) {
            gone[pid] = absl::Now();
            continue;
          }
          if (!term_seen.count(pid) && SignalPending(pid, SIGTERM)) {
            term_seen[pid] = absl::Now();
            if (pid == cooperative) ::kill(pid, SIGCONT);
          }
        }
        return gone.size() == frozen.size();
      },
      absl::Seconds(15), absl::Milliseconds(2));
  ASSERT_TRUE(term_seen.count(cooperative) && term_seen.count(stuck))
      << "SIGTERM seen on " << term_seen.size() << " of 2 children";
  ASSERT_TRUE(all_gone) << gone.size() << " of 2 children ended";
  EXPECT_LT(term_seen[cooperative] - cancel_time, absl::Seconds(3));
  EXPECT_LT(term_seen[stuck] - cancel_time, absl::Seconds(3));
  EXPECT_LT(gone[cooperative] - term_seen[cooperative], absl::Seconds(2))
      << "a child that honours SIGTERM stops before the grace is over";
  EXPECT_GE(gone[stuck] - term_seen[stuck], absl::Milliseconds(1800))
      << "the grace was not given";
  EXPECT_LT(gone[stuck] - term_seen[stuck], absl::Seconds(4))
      << "SIGKILL came late";

  ASSERT_TRUE(WaitForSweep(sweep_id, v1::SWEEP_STATE_CANCELLED).ok())
      << WaitForSweep(sweep_id, v1::SWEEP_STATE_CANCELLED);
  absl::StatusOr<std::vector<v1::Run>> runs =
      ListAllRuns(sweeps_.get(), sweep_id);
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 4u);
  for (const v1::Run& run : *runs) {
    EXPECT_EQ(run.state(), v1::RUN_STATE_CANCELLED) << run.run_id();
    EXPECT_TRUE(run.adapter_artifact_id().empty()) << run.run_id();
  }
  // No training process of either worker is left, and no new one starts.
  absl::SleepFor(absl::Seconds(1));
  for (const std::string name : {"worker-a", "worker-b"}) {
    EXPECT_TRUE(TrainChildren(worker(name)->work_dir()).empty()) << name;
    EXPECT_TRUE(worker(name)->Alive()) << name;
  }
}

TEST_F(WorkerIntegrationTest, DrainingWorkerHandsItsRunBackToResumeElsewhere) {
  ASSERT_NO_FATAL_FAILURE(StartLorad("3s"));
  ASSERT_NO_FATAL_FAILURE(StartWorkers());
  const std::string sweep_id = Submit("worker-it-drain", kLongRunSteps, 3);
  WorkerProcess* a = worker("worker-a");
  std::vector<FrozenChild> frozen =
      FreezeAfterCheckpoint({a->work_dir()}, kLongRunSteps);
  ASSERT_EQ(frozen.size(), 1u);
  const FrozenChild held = frozen[0];
  const std::string run_id = held.child.run_id;

  // SIGTERM to worker A: it takes no new job, tells its child to stop (the
  // child checkpoints at its next step), uploads that checkpoint, gives the
  // run back, and exits 0.
  a->Signal(SIGTERM);
  ASSERT_TRUE(WaitUntil([&] { return SignalPending(held.child.pid, SIGTERM); },
                        absl::Seconds(10)))
      << "the child was not asked to stop";
  ::kill(held.child.pid, SIGCONT);
  ASSERT_TRUE(WaitUntil([&] { return !a->Alive(); }, absl::Seconds(30)))
      << "worker A did not finish draining";
  EXPECT_TRUE(WIFEXITED(a->exit_status()) && WEXITSTATUS(a->exit_status()) == 0)
      << "wait status " << a->exit_status();
  EXPECT_TRUE(ProcessGone(held.child.pid));
  const TrainProgress drained = ReadProgress(held.child.output_dir);
  EXPECT_GT(drained.last_checkpoint, held.progress.last_checkpoint)
      << "the child did not checkpoint on SIGTERM";

  // Worker B finishes everything; the handed-back run resumes from the
  // drain checkpoint with attempt 2.
  ASSERT_TRUE(WaitForSweep(sweep_id, v1::SWEEP_STATE_SUCCEEDED).ok())
      << WaitForSweep(sweep_id, v1::SWEEP_STATE_SUCCEEDED);
  const v1::Run run = Run(run_id);
  EXPECT_EQ(run.attempt(), 2);
  EXPECT_THAT(run.error(), HasSubstr("draining"));
  const std::vector<v1::SweepEvent> events = AllEvents(sweep_id);
  const LossSeries series = LossByRun(events)[run_id];
  const std::vector<int64_t> resumed = StepsOf(series, 2);
  ASSERT_FALSE(resumed.empty());
  EXPECT_EQ(resumed.front(), drained.last_checkpoint + 1)
      << "attempt 2 did not start after the drain checkpoint";
  for (const auto& [id, run_series] : LossByRun(events)) {
    ExpectCompleteLossSeries(id, run_series, kLongRunSteps);
  }
}

TEST_F(WorkerIntegrationTest, HungChildIsKilledAndReportedAsHung) {
  ASSERT_NO_FATAL_FAILURE(StartLorad("3s"));
  ASSERT_NO_FATAL_FAILURE(StartWorkers(/*hang_timeout=*/"1500ms"));
  const std::string sweep_id = Submit("worker-it-hang", kLongRunSteps, 1);
  // A child that stops making progress (frozen) is killed after the hang
  // timeout; its run fails (max_attempts 1) saying why, the worker goes on.
  std::vector<FrozenChild> frozen =
      FreezeAfterCheckpoint({worker("worker-a")->work_dir()}, kLongRunSteps);
  ASSERT_EQ(frozen.size(), 1u);
  const std::string run_id = frozen[0].child.run_id;
  ASSERT_TRUE(WaitUntil([&] { return ProcessGone(frozen[0].child.pid); },
                        absl::Seconds(20)))
      << "the hung child was not killed";
  ASSERT_TRUE(
      WaitUntil([&] { return Run(run_id).state() == v1::RUN_STATE_FAILED; },
                absl::Seconds(20)));
  EXPECT_THAT(Run(run_id).error(), HasSubstr("hung"));
  ASSERT_TRUE(WaitForSweep(sweep_id, v1::SWEEP_STATE_FAILED).ok())
      << WaitForSweep(sweep_id, v1::SWEEP_STATE_FAILED);
  EXPECT_TRUE(worker("worker-a")->Alive());
  EXPECT_TRUE(worker("worker-b")->Alive());
}

TEST_F(WorkerIntegrationTest, ChildrenSleepWhileWaitingOnlyWhenCoresAreShort) {
  // Without a policy of the worker's own: OpenMP's spinning default, which
  // is what a job with cores to itself wants.
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) {
    GTEST_SKIP() << "OMP_WAIT_POLICY is set for the test itself";
  }
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  if (cores < 1) GTEST_SKIP() << "core count unknown";
  ASSERT_NO_FATAL_FAILURE(StartLorad("3s"));
  // One job of cores + 1 threads per worker: more threads than cores.
  ASSERT_NO_FATAL_FAILURE(StartWorkers("120s", cores + 1));
  const std::vector<std::string> environment =
      FirstChildEnvironment("worker-it-omp");
  EXPECT_THAT(environment, Contains("OMP_WAIT_POLICY=PASSIVE"));
  EXPECT_THAT(environment,
              Contains(absl::StrCat("OMP_NUM_THREADS=", cores + 1)));
}

TEST_F(WorkerIntegrationTest, ChildrenKeepOpenMpDefaultWhenJobsFitTheCores) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) {
    GTEST_SKIP() << "OMP_WAIT_POLICY is set for the test itself";
  }
  ASSERT_NO_FATAL_FAILURE(StartLorad("3s"));
  ASSERT_NO_FATAL_FAILURE(StartWorkers());  // one 1-thread job each
  const std::vector<std::string> environment =
      FirstChildEnvironment("worker-it-omp-fit");
  EXPECT_THAT(environment, Contains("OMP_NUM_THREADS=1"));
  for (const std::string& entry : environment) {
    EXPECT_FALSE(absl::StartsWith(entry, "OMP_WAIT_POLICY=")) << entry;
  }
}

}  // namespace
}  // namespace lora::integration
