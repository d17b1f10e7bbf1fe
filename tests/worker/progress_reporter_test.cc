// ProgressReporter against the real lorad (//coordinator:lorad), started as a
// child process on 127.0.0.1 with a SQLite file under $TEST_TMPDIR: the
// reporter tails a metrics.jsonl that the test appends to the way
// lora-train does, and the test checks what the coordinator stored.
#include "worker/progress_reporter.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "lora/v1/sweep_service.grpc.pb.h"
#include "lora/v1/worker_service.grpc.pb.h"
#include "worker/artifact_transfer.h"
#include "worker/coordinator_channel.h"

namespace lora::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ReadAll(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// A lorad child process: SIGKILLed when the object goes away (or the test
// process dies).
class Lorad {
 public:
  // Starts lorad on 127.0.0.1:`port` (0 = any free port) with runs.db and
  // artifacts/ in `dir`, and waits until it serves.
  static absl::StatusOr<std::unique_ptr<Lorad>> Start(const std::string& dir,
                                                      int port) {
    const char* srcdir = std::getenv("TEST_SRCDIR");
    const char* workspace = std::getenv("TEST_WORKSPACE");
    const std::string binary = absl::StrCat(
        srcdir != nullptr ? srcdir : ".", "/",
        workspace != nullptr ? workspace : "__main__", "/coordinator/lorad");
    const std::string ports_file = dir + "/ports";
    const std::string log_path = dir + "/lorad.log";
    std::filesystem::remove(ports_file);
    std::vector<std::string> args = {
        binary,
        absl::StrCat("--listen=127.0.0.1:", port),
        "--http=",
        "--db=" + dir + "/runs.db",
        "--artifact_root=" + dir + "/artifacts",
        "--ports_file=" + ports_file,
        "--heartbeat_interval=2s",
        "--lease_ttl=20s",
    };
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const int log_fd = ::open(log_path.c_str(),
                              O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) return absl::InternalError("cannot open " + log_path);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return absl::InternalError("fork failed");
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(126);
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(log_fd);
    std::unique_ptr<Lorad> lorad(new Lorad(pid, log_path));
    const absl::Time give_up = absl::Now() + absl::Seconds(20);
    while (true) {
      int wait_status = 0;
      if (::waitpid(pid, &wait_status, WNOHANG) == pid) {
        lorad->pid_ = -1;
        return absl::InternalError(
            absl::StrCat("lorad exited early; log:\n", ReadAll(log_path)));
      }
      for (absl::string_view line : absl::StrSplit(ReadAll(ports_file), '\n')) {
        if (absl::ConsumePrefix(&line, "grpc=") &&
            absl::SimpleAtoi(line, &lorad->port_) && lorad->port_ > 0) {
          return lorad;
        }
      }
      if (absl::Now() > give_up) {
        return absl::DeadlineExceededError(
            absl::StrCat("lorad did not serve; log:\n", ReadAll(log_path)));
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  ~Lorad() { Kill(); }

  // kill -9 and reap.
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int wait_status = 0;
    while (::waitpid(pid_, &wait_status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

  int port() const { return port_; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  std::string Log() const { return ReadAll(log_path_); }

 private:
  Lorad(pid_t pid, std::string log_path)
      : pid_(pid), log_path_(std::move(log_path)) {}

  pid_t pid_;
  std::string log_path_;
  int port_ = 0;
};

std::unique_ptr<grpc::ClientContext> Context(
    absl::Duration timeout = absl::Seconds(15)) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

// The lines lora-train writes (nlohmann's dump, as Trainer::Record), with
// values derived from the step or epoch.
std::string StepLine(int64_t step, int64_t epoch) {
  const nlohmann::json record = {
      {"type", "step"},          {"step", step},
      {"epoch", epoch},          {"total_steps", 1000},
      {"loss", 1.0 / step},      {"lr", 0.001},
      {"grad_norm", 0.5 + step}, {"tokens_per_second", 100.0 + step},
      {"loss_scale", 1.0},       {"skipped", false}};
  return record.dump() + "\n";
}

std::string EpochLine(int64_t epoch, int64_t step) {
  const nlohmann::json record = {{"type", "epoch"},
                                 {"epoch", epoch},
                                 {"step", step},
                                 {"train_loss", 2.0 / epoch},
                                 {"val_loss", 3.0 / epoch},
                                 {"val_accuracy", 0.5 + epoch / 100.0}};
  return record.dump() + "\n";
}

std::string CheckpointLine(int64_t step, int64_t epoch) {
  const nlohmann::json record = {
      {"type", "checkpoint"}, {"step", step}, {"epoch", epoch}};
  return record.dump() + "\n";
}

constexpr const char* kStepNames[] = {"loss", "learning_rate", "grad_norm",
                                      "tokens_per_second", "loss_scale"};
constexpr const char* kEpochNames[] = {"train_loss", "val_loss",
                                       "val_accuracy"};

using PointKey = std::pair<int64_t, std::string>;  // (step, name)

class ProgressReporterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = absl::StrCat(
        tmp != nullptr ? tmp : "/tmp", "/progress_reporter_test/",
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ + "/lorad");
    metrics_path_ = dir_ + "/metrics.jsonl";
    ASSERT_NO_FATAL_FAILURE(StartLorad(0));
    ChannelOptions channel_options;
    channel_options.address = lorad_->address();
    absl::StatusOr<std::unique_ptr<CoordinatorChannel>> channel =
        CoordinatorChannel::Create(channel_options);
    ASSERT_TRUE(channel.ok()) << channel.status();
    channel_ = std::move(*channel);

    v1::SubmitSweepRequest submit;
    submit.set_spec_yaml("name: t\nmodel: roberta-tiny\ntask: polarity\n");
    v1::SubmitSweepResponse submitted;
    grpc::Status status =
        sweeps_->SubmitSweep(Context().get(), submit, &submitted);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(submitted.runs_size(), 1);
    sweep_id_ = submitted.sweep().sweep_id();

    v1::RegisterWorkerRequest reg;
    reg.set_name("progress-reporter-test");
    reg.mutable_capabilities()->set_device(v1::DEVICE_KIND_CPU);
    reg.mutable_capabilities()->set_cpu_threads(1);
    reg.mutable_capabilities()->set_max_concurrent_jobs(1);
    v1::RegisterWorkerResponse registered;
    status = channel_->stub()->RegisterWorker(channel_->NewContext().get(), reg,
                                              &registered);
    ASSERT_TRUE(status.ok()) << status.error_message();

    v1::AcquireJobRequest acquire;
    acquire.set_worker_id(registered.worker_id());
    acquire.mutable_wait()->set_seconds(5);
    v1::AcquireJobResponse acquired;
    status = channel_->stub()->AcquireJob(
        channel_->NewContext(absl::Seconds(20)).get(), acquire, &acquired);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_TRUE(acquired.has_job());
    job_ = acquired.job();
  }

  void StartLorad(int port) {
    absl::StatusOr<std::unique_ptr<Lorad>> lorad =
        Lorad::Start(dir_ + "/lorad", port);
    ASSERT_TRUE(lorad.ok()) << lorad.status();
    lorad_ = std::move(*lorad);
    sweeps_ = v1::SweepService::NewStub(grpc::CreateChannel(
        lorad_->address(), grpc::InsecureChannelCredentials()));
  }

  ProgressReporterOptions Options() {
    ProgressReporterOptions options;
    options.run_id = job_.run().run_id();
    options.attempt = job_.attempt();
    options.lease_id = job_.lease_id();
    options.metrics_path = metrics_path_;
    options.max_points_per_batch = 12;
    options.batch_interval = absl::Milliseconds(20);
    options.min_backoff = absl::Milliseconds(20);
    options.max_backoff = absl::Milliseconds(300);
    return options;
  }

  // Appends as lora-train does: open, write, close.
  void Append(const std::string& text) {
    std::ofstream(metrics_path_, std::ios::app | std::ios::binary) << text;
  }

  v1::Run GetRun() {
    v1::GetRunRequest request;
    request.set_run_id(job_.run().run_id());
    v1::Run run;
    grpc::Status status = sweeps_->GetRun(Context().get(), request, &run);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return run;
  }

  void FinishRun() {
    v1::FinishRunRequest request;
    request.set_run_id(job_.run().run_id());
    request.set_attempt(job_.attempt());
    request.set_lease_id(job_.lease_id());
    request.set_outcome(v1::RUN_OUTCOME_SUCCEEDED);
    v1::FinishRunResponse reply;
    grpc::Status status = channel_->stub()->FinishRun(
        channel_->NewContext(absl::Seconds(15)).get(), request, &reply);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(reply.state(), v1::RUN_STATE_SUCCEEDED);
  }

  // Every metric event the coordinator stored for the run, replayed by
  // WatchSweep from sequence 0 (the sweep must be terminal, so the stream
  // ends).
  std::vector<v1::RunMetric> StoredMetrics() {
    v1::WatchSweepRequest request;
    request.set_sweep_id(sweep_id_);
    request.set_after_sequence(0);
    request.set_include_metrics(true);
    std::unique_ptr<grpc::ClientContext> context = Context(absl::Seconds(20));
    std::unique_ptr<grpc::ClientReader<v1::SweepEvent>> reader =
        sweeps_->WatchSweep(context.get(), request);
    std::vector<v1::RunMetric> metrics;
    v1::SweepEvent event;
    while (reader->Read(&event)) {
      if (event.has_metric()) metrics.push_back(event.metric());
    }
    grpc::Status status = reader->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return metrics;
  }

  // Checks that `stored` holds each key of `expected` exactly once, and
  // nothing else.
  void ExpectExactlyOnce(const std::vector<v1::RunMetric>& stored,
                         const std::set<PointKey>& expected) {
    std::map<PointKey, int> seen;
    for (const v1::RunMetric& metric : stored) {
      EXPECT_EQ(metric.run_id(), job_.run().run_id());
      EXPECT_EQ(metric.attempt(), job_.attempt());
      ++seen[{metric.point().step(), metric.point().name()}];
    }
    EXPECT_EQ(stored.size(), expected.size());
    for (const auto& [key, count] : seen) {
      EXPECT_EQ(count, 1) << "step " << key.first << " " << key.second;
      EXPECT_TRUE(expected.count(key))
          << "step " << key.first << " " << key.second;
    }
    for (const PointKey& key : expected) {
      EXPECT_TRUE(seen.count(key))
          << "missing step " << key.first << " " << key.second;
    }
  }

  // Writes step records first_step..last_step (epoch `epoch`) and the
  // epoch records every `epoch_every` steps, adding their keys to
  // `expected`.
  void WriteSteps(int64_t first_step, int64_t last_step, int64_t epoch_every,
                  absl::Duration pause, std::set<PointKey>* expected) {
    for (int64_t step = first_step; step <= last_step; ++step) {
      const int64_t epoch = 1 + (step - 1) / epoch_every;
      Append(StepLine(step, epoch));
      for (const char* name : kStepNames) expected->insert({step, name});
      if (step % epoch_every == 0) {
        Append(EpochLine(epoch, step));
        for (const char* name : kEpochNames) expected->insert({step, name});
      }
      absl::SleepFor(pause);
    }
  }

  // A folder to upload as the "checkpoint".
  std::string CheckpointFolder(const std::string& content) {
    const std::string folder = dir_ + "/checkpoint";
    std::filesystem::create_directories(folder);
    std::ofstream(folder + "/training_state.safetensors", std::ios::binary)
        << content;
    return folder;
  }

  std::string dir_;
  std::string metrics_path_;
  std::unique_ptr<Lorad> lorad_;
  std::unique_ptr<CoordinatorChannel> channel_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
  std::string sweep_id_;
  v1::Job job_;
};

TEST_F(ProgressReporterTest, StoresEveryPointOnceAndShowsTheLatestMetrics) {
  std::set<PointKey> expected;
  Append(R"({"type":"load_report","text":"all tensors loaded"})"
         "\n");
  WriteSteps(1, 5, 20, absl::ZeroDuration(), &expected);
  ProgressReporter reporter(channel_.get(), Options());
  reporter.Start();

  WriteSteps(6, 30, 20, absl::Milliseconds(3), &expected);
  Append("this line is not JSON\n");
  // A line written in two pieces: the first piece alone is not sent.
  const std::string line31 = StepLine(31, 2);
  Append(line31.substr(0, 20));
  absl::SleepFor(absl::Milliseconds(100));
  Append(line31.substr(20));
  for (const char* name : kStepNames) expected.insert({31, name});
  WriteSteps(32, 60, 20, absl::Milliseconds(3), &expected);

  ASSERT_TRUE(reporter.Flush(absl::Seconds(15)).ok()) << reporter.last_error();
  EXPECT_EQ(reporter.acked_offset(),
            static_cast<int64_t>(std::filesystem::file_size(metrics_path_)));
  EXPECT_EQ(reporter.last_step(), 60);
  EXPECT_FALSE(reporter.stop_requested());
  EXPECT_GT(reporter.lease_expire_time(), absl::Now());
  const ProgressReporterCounters counters = reporter.counters();
  EXPECT_EQ(expected.size(), 60u * 5 + 3 * 3);
  EXPECT_EQ(counters.points_acked, static_cast<int64_t>(expected.size()));
  EXPECT_EQ(counters.invalid_lines, 1);
  EXPECT_EQ(counters.reconnects, 0);
  // A batch closes at the record that reaches 12 points, so it holds at
  // most 11 + 5.
  EXPECT_GE(counters.batches_acked, static_cast<int64_t>(expected.size()) / 16);

  const v1::Run run = GetRun();
  EXPECT_EQ(run.state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(run.step(), 60);
  EXPECT_DOUBLE_EQ(run.latest_metrics().at("loss"), 1.0 / 60);
  EXPECT_DOUBLE_EQ(run.latest_metrics().at("learning_rate"), 0.001);
  EXPECT_DOUBLE_EQ(run.latest_metrics().at("val_accuracy"), 0.5 + 3 / 100.0);
  EXPECT_DOUBLE_EQ(run.latest_metrics().at("train_loss"), 2.0 / 3);

  reporter.Stop();
  ASSERT_NO_FATAL_FAILURE(FinishRun());
  ExpectExactlyOnce(StoredMetrics(), expected);
}

TEST_F(ProgressReporterTest, ResumesAfterCoordinatorKillWithoutGapOrDuplicate) {
  ProgressReporterOptions options = Options();
  options.max_points_per_batch = 10;
  options.batch_interval = absl::Milliseconds(10);
  ProgressReporter reporter(channel_.get(), options);
  reporter.Start();

  std::set<PointKey> expected;
  std::thread writer(
      [&] { WriteSteps(1, 250, 50, absl::Milliseconds(8), &expected); });
  // Kill the coordinator mid-stream, while the child keeps writing.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (reporter.last_step() < 60 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  const int64_t acked_before_kill = reporter.acked_offset();
  EXPECT_GT(acked_before_kill, 0);
  const int port = lorad_->port();
  lorad_->Kill();
  absl::SleepFor(absl::Milliseconds(600));
  // Same database, same port (the channel reconnects to it).
  ASSERT_NO_FATAL_FAILURE(StartLorad(port));
  writer.join();

  ASSERT_TRUE(reporter.Flush(absl::Seconds(20)).ok())
      << reporter.last_error() << "\n"
      << lorad_->Log();
  const ProgressReporterCounters counters = reporter.counters();
  EXPECT_GE(counters.reconnects, 1);
  EXPECT_EQ(counters.points_acked, static_cast<int64_t>(expected.size()));
  EXPECT_EQ(reporter.last_step(), 250);
  EXPECT_EQ(GetRun().step(), 250);

  reporter.Stop();
  ASSERT_NO_FATAL_FAILURE(FinishRun());
  ExpectExactlyOnce(StoredMetrics(), expected);
}

TEST_F(ProgressReporterTest, CancelledRunSetsStopRequested) {
  ProgressReporter reporter(channel_.get(), Options());
  Append(StepLine(1, 1));
  reporter.Start();
  ASSERT_TRUE(reporter.Flush(absl::Seconds(10)).ok()) << reporter.last_error();

  v1::CancelRunRequest cancel;
  cancel.set_run_id(job_.run().run_id());
  v1::Run cancelled;
  grpc::Status status = sweeps_->CancelRun(Context().get(), cancel, &cancelled);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(reporter.stop_requested());  // learnt with the next batch

  Append(StepLine(2, 1));
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (!reporter.stop_requested() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(reporter.stop_requested());
  EXPECT_EQ(reporter.stop_reason(), "cancelled");
  const absl::Status flushed = reporter.Flush(absl::Seconds(2));
  EXPECT_EQ(flushed.code(), absl::StatusCode::kFailedPrecondition) << flushed;
  EXPECT_THAT(flushed.message(), HasSubstr("cancelled"));

  // The batch answered with stop was not stored, and nothing follows it.
  Append(StepLine(3, 1));
  absl::SleepFor(absl::Milliseconds(200));
  const v1::Run run = GetRun();
  EXPECT_EQ(run.state(), v1::RUN_STATE_CANCELLED);
  EXPECT_EQ(run.step(), 1);
  EXPECT_EQ(reporter.counters().batches_sent, 2);
}

TEST_F(ProgressReporterTest, ReportsCheckpointOnlyAfterTheHookReturned) {
  const std::string folder = CheckpointFolder("weights after step 3");
  std::atomic<ProgressReporter*> reporter_ptr{nullptr};
  absl::Mutex mutex;
  std::vector<int64_t> hook_steps;
  std::string uploaded_id;
  int64_t checkpoint_line_start = 0;

  ProgressReporterOptions options = Options();
  options.checkpoint_hook = [&](int64_t step) -> absl::StatusOr<std::string> {
    {
      absl::MutexLock lock(&mutex);
      hook_steps.push_back(step);
    }
    // The points written before the checkpoint line are already stored;
    // the checkpoint is not reported yet.
    EXPECT_EQ(reporter_ptr.load()->acked_offset(), checkpoint_line_start);
    v1::Run run = GetRun();
    EXPECT_EQ(run.step(), 3);
    EXPECT_EQ(run.checkpoint_artifact_id(), "");
    // A slow upload: still nothing reported meanwhile.
    absl::SleepFor(absl::Milliseconds(300));
    EXPECT_EQ(GetRun().checkpoint_artifact_id(), "");
    absl::StatusOr<UploadedArtifact> uploaded = UploadFolder(
        channel_.get(), folder, v1::ARTIFACT_KIND_TRAINING_CHECKPOINT,
        "checkpoint", job_.run().run_id());
    if (!uploaded.ok()) return uploaded.status();
    absl::MutexLock lock(&mutex);
    uploaded_id = uploaded->artifact_id;
    return uploaded->artifact_id;
  };
  ProgressReporter reporter(channel_.get(), options);
  reporter_ptr = &reporter;

  std::set<PointKey> expected;
  WriteSteps(1, 3, 100, absl::ZeroDuration(), &expected);
  checkpoint_line_start =
      static_cast<int64_t>(std::filesystem::file_size(metrics_path_));
  Append(CheckpointLine(3, 1));
  WriteSteps(4, 4, 100, absl::ZeroDuration(), &expected);
  reporter.Start();
  ASSERT_TRUE(reporter.Flush(absl::Seconds(15)).ok()) << reporter.last_error();

  std::string id;
  {
    absl::MutexLock lock(&mutex);
    EXPECT_THAT(hook_steps, ElementsAre(3));
    id = uploaded_id;
  }
  ASSERT_FALSE(id.empty());
  const v1::Run run = GetRun();
  EXPECT_EQ(run.checkpoint_artifact_id(), id);
  EXPECT_EQ(run.step(), 4);
  EXPECT_EQ(reporter.counters().checkpoints_reported, 1);

  reporter.Stop();
  ASSERT_NO_FATAL_FAILURE(FinishRun());
  ExpectExactlyOnce(StoredMetrics(), expected);
}

TEST_F(ProgressReporterTest, FailingCheckpointHookIsRetriedOrPassedOver) {
  const std::string folder = CheckpointFolder("weights after step 4");
  absl::Mutex mutex;
  std::vector<int64_t> hook_steps;
  std::string uploaded_id;

  ProgressReporterOptions options = Options();
  options.checkpoint_max_attempts = 3;
  options.checkpoint_hook = [&](int64_t step) -> absl::StatusOr<std::string> {
    int calls_for_step4 = 0;
    {
      absl::MutexLock lock(&mutex);
      hook_steps.push_back(step);
      for (int64_t s : hook_steps) calls_for_step4 += s == 4 ? 1 : 0;
    }
    // Step 2's upload fails for good; step 4's cannot reach the
    // coordinator four times (more than checkpoint_max_attempts), which
    // does not count against it.
    if (step == 2) {
      return absl::InternalError("checkpoint folder of step 2 is unreadable");
    }
    if (calls_for_step4 <= 4) {
      return absl::UnavailableError(absl::StrCat("upload of step ", step));
    }
    absl::StatusOr<UploadedArtifact> uploaded = UploadFolder(
        channel_.get(), folder, v1::ARTIFACT_KIND_TRAINING_CHECKPOINT,
        "checkpoint", job_.run().run_id());
    if (!uploaded.ok()) return uploaded.status();
    absl::MutexLock lock(&mutex);
    uploaded_id = uploaded->artifact_id;
    return uploaded->artifact_id;
  };
  ProgressReporter reporter(channel_.get(), options);

  std::set<PointKey> expected;
  WriteSteps(1, 2, 100, absl::ZeroDuration(), &expected);
  Append(CheckpointLine(2, 1));
  WriteSteps(3, 4, 100, absl::ZeroDuration(), &expected);
  Append(CheckpointLine(4, 1));
  WriteSteps(5, 5, 100, absl::ZeroDuration(), &expected);
  reporter.Start();
  ASSERT_TRUE(reporter.Flush(absl::Seconds(15)).ok()) << reporter.last_error();

  std::string id;
  {
    absl::MutexLock lock(&mutex);
    EXPECT_THAT(hook_steps, ElementsAre(2, 2, 2, 4, 4, 4, 4, 4));
    id = uploaded_id;
  }
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(GetRun().checkpoint_artifact_id(), id);
  const ProgressReporterCounters counters = reporter.counters();
  EXPECT_EQ(counters.checkpoints_skipped, 1);
  EXPECT_EQ(counters.checkpoints_reported, 1);
  EXPECT_TRUE(reporter.last_error().ok()) << reporter.last_error();

  reporter.Stop();
  ASSERT_NO_FATAL_FAILURE(FinishRun());
  ExpectExactlyOnce(StoredMetrics(), expected);
}

TEST_F(ProgressReporterTest, FirstBatchStartsTheRunBeforeAnyLine) {
  EXPECT_EQ(GetRun().state(), v1::RUN_STATE_LEASED);
  ProgressReporter reporter(channel_.get(), Options());
  reporter.Start();
  ASSERT_TRUE(reporter.Flush(absl::Seconds(10)).ok()) << reporter.last_error();
  EXPECT_EQ(GetRun().state(), v1::RUN_STATE_RUNNING);
  const ProgressReporterCounters counters = reporter.counters();
  EXPECT_EQ(counters.batches_acked, 1);
  EXPECT_EQ(counters.points_acked, 0);
  EXPECT_EQ(reporter.acked_offset(), 0);

  // Lines without points are passed over without a batch.
  Append(R"({"type":"resume","step":0,"epoch":1})"
         "\n");
  ASSERT_TRUE(reporter.Flush(absl::Seconds(10)).ok()) << reporter.last_error();
  EXPECT_EQ(reporter.counters().batches_sent, 1);
  EXPECT_EQ(reporter.acked_offset(),
            static_cast<int64_t>(std::filesystem::file_size(metrics_path_)));
}

TEST_F(ProgressReporterTest, LinesBeforeStartOffsetAreNotReported) {
  std::set<PointKey> earlier;
  WriteSteps(1, 2, 100, absl::ZeroDuration(), &earlier);
  ProgressReporterOptions options = Options();
  options.start_offset =
      static_cast<int64_t>(std::filesystem::file_size(metrics_path_));
  ProgressReporter reporter(channel_.get(), options);
  EXPECT_EQ(reporter.acked_offset(), options.start_offset);
  std::set<PointKey> expected;
  WriteSteps(3, 3, 100, absl::ZeroDuration(), &expected);
  reporter.Start();
  ASSERT_TRUE(reporter.Flush(absl::Seconds(10)).ok()) << reporter.last_error();
  EXPECT_EQ(reporter.counters().points_acked, 5);
  EXPECT_EQ(GetRun().step(), 3);

  reporter.Stop();
  ASSERT_NO_FATAL_FAILURE(FinishRun());
  ExpectExactlyOnce(StoredMetrics(), expected);
}

// No coordinator at all: nothing is acknowledged, and Flush says why.
TEST(ProgressReporterWithoutCoordinatorTest, FlushReportsTheStreamError) {
  // A port that was free a moment ago; nothing listens there.
  ChannelOptions channel_options;
  channel_options.address = "127.0.0.1:1";
  absl::StatusOr<std::unique_ptr<CoordinatorChannel>> channel =
      CoordinatorChannel::Create(channel_options);
  ASSERT_TRUE(channel.ok()) << channel.status();
  ProgressReporterOptions options;
  options.run_id = "run-x";
  options.attempt = 1;
  options.lease_id = "lease-x";
  options.metrics_path = "/nonexistent/metrics.jsonl";
  options.min_backoff = absl::Milliseconds(10);
  options.max_backoff = absl::Milliseconds(50);
  ProgressReporter reporter(channel->get(), options);

  EXPECT_EQ(reporter.Flush(absl::Seconds(1)).code(),
            absl::StatusCode::kFailedPrecondition);
  reporter.Start();
  const absl::Status flushed = reporter.Flush(absl::Milliseconds(500));
  EXPECT_EQ(flushed.code(), absl::StatusCode::kDeadlineExceeded) << flushed;
  EXPECT_THAT(flushed.message(), HasSubstr("ReportProgress of run run-x"));
  EXPECT_GE(reporter.counters().batches_sent, 2);  // retried
  EXPECT_EQ(reporter.counters().batches_acked, 0);

  reporter.Stop();
  EXPECT_EQ(reporter.Flush(absl::Seconds(1)).code(),
            absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace lora::worker
