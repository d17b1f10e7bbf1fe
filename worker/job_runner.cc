#include "worker/job_runner.h"

#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/grpc_status.h"
#include "base/status_macros.h"
#include "lora_core/train_config.h"
#include "sweep/artifact_manifest.h"
#include "worker/child_process.h"
#include "worker/progress_reporter.h"

namespace lora::worker {
namespace {

// lora.v1.ArtifactKind values.
constexpr int kTrainingCheckpoint = 3;
constexpr int kAdapter = 4;
constexpr int kRunLog = 5;

int64_t FileSize(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 ? info.st_size : -1;
}

bool IsFolder(const std::string& path) {
  std::error_code error;
  return std::filesystem::is_directory(path, error);
}

// Copies a folder's files (an artifact in the cache must never be changed,
// and the trainer replaces checkpoint files).
absl::Status CopyFolder(const std::string& from, const std::string& to) {
  std::error_code error;
  std::filesystem::create_directories(to, error);
  std::filesystem::copy(from, to,
                        std::filesystem::copy_options::recursive |
                            std::filesystem::copy_options::overwrite_existing,
                        error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("copy ", from, " to ", to, ": ", error.message()));
  }
  return absl::OkStatus();
}

// The optimizer step a lora-train checkpoint holds, read without LibTorch
// from its safetensors header (an 8-byte little-endian length, then JSON),
// where lora_core/training_checkpoint.cc stores
// __metadata__.lora_sweep_training_state.step.
absl::StatusOr<int64_t> CheckpointStep(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  unsigned char length[8];
  if (!file.read(reinterpret_cast<char*>(length), sizeof(length))) {
    return absl::DataLossError(absl::StrCat(path, ": no safetensors header"));
  }
  uint64_t size = 0;
  for (int i = 7; i >= 0; --i) size = (size << 8) | length[i];
  if (size > (uint64_t{64} << 20)) {
    return absl::DataLossError(
        absl::StrCat(path, ": safetensors header of ", size, " bytes"));
  }
  std::string text(size, '\0');
  if (!file.read(text.data(), static_cast<std::streamsize>(size))) {
    return absl::DataLossError(absl::StrCat(path, ": truncated header"));
  }
  const nlohmann::json header = nlohmann::json::parse(text, nullptr, false);
  if (!header.is_object() || !header.contains("__metadata__") ||
      !header["__metadata__"].is_object() ||
      !header["__metadata__"].contains("lora_sweep_training_state") ||
      !header["__metadata__"]["lora_sweep_training_state"].is_string()) {
    return absl::DataLossError(
        absl::StrCat(path, ": no lora_sweep_training_state metadata"));
  }
  const nlohmann::json state = nlohmann::json::parse(
      header["__metadata__"]["lora_sweep_training_state"].get<std::string>(),
      nullptr, false);
  if (!state.is_object() || !state.contains("step") ||
      !state["step"].is_number_integer()) {
    return absl::DataLossError(absl::StrCat(path, ": no step in its state"));
  }
  return state["step"].get<int64_t>();
}

}  // namespace

JobRunner::JobRunner(CoordinatorChannel* channel, ArtifactCache* cache,
                     v1::Job job, JobRunnerOptions options)
    : channel_(channel),
      cache_(cache),
      job_(std::move(job)),
      options_(std::move(options)),
      run_dir_(options_.work_dir + "/" + job_.run().run_id()),
      output_dir_(run_dir_ + "/output") {}

JobRunner::~JobRunner() {
  RequestStop("worker exiting");
  if (thread_.joinable()) thread_.join();
}

void JobRunner::Start() {
  thread_ = std::thread([this] { Run(); });
}

void JobRunner::RequestStop(const std::string& reason) {
  absl::MutexLock lock(&mutex_);
  if (stop_reason_.empty()) stop_reason_ = reason;
}

std::string JobRunner::StopReason() const {
  absl::MutexLock lock(&mutex_);
  return stop_reason_;
}

std::string JobRunner::outcome() const {
  absl::MutexLock lock(&mutex_);
  return outcome_;
}

v1::HeldLease JobRunner::HeldLease() const {
  v1::HeldLease lease;
  lease.set_run_id(job_.run().run_id());
  lease.set_attempt(job_.attempt());
  lease.set_lease_id(job_.lease_id());
  lease.set_step(step_.load());
  return lease;
}

absl::Status JobRunner::Prepare(std::string* job_file) {
  // Every attempt starts from what the coordinator holds: its last
  // checkpoint, or nothing.
  LORA_RETURN_IF_ERROR(RemoveTree(output_dir_));
  std::error_code error;
  std::filesystem::create_directories(output_dir_, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("create ", output_dir_, ": ", error.message()));
  }
  const std::string& checkpoint = job_.resume_checkpoint_artifact_id();
  if (!checkpoint.empty()) {
    LORA_ASSIGN_OR_RETURN(std::string cached,
                          cache_->Fetch(channel_, checkpoint));
    LORA_RETURN_IF_ERROR(CopyFolder(cached, output_dir_ + "/checkpoint"));
  }
  LORA_ASSIGN_OR_RETURN(
      core::TrainConfig config,
      core::ParseTrainConfig(job_.config_yaml(), "job " + job_.run().run_id()));
  if (sweep::IsArtifactId(config.model)) {
    LORA_ASSIGN_OR_RETURN(config.model, cache_->Fetch(channel_, config.model));
  }
  if (sweep::IsArtifactId(config.data_dir)) {
    LORA_ASSIGN_OR_RETURN(config.data_dir,
                          cache_->Fetch(channel_, config.data_dir));
  }
  config.output_dir = output_dir_;
  config.threads = options_.threads;
  config.device = options_.device.rfind("cuda", 0) == 0 ? "cuda" : "cpu";
  config.resume = true;
  *job_file = absl::StrCat(run_dir_, "/job-attempt-", job_.attempt(), ".yaml");
  return WriteFileAtomically(*job_file, core::TrainConfigToYaml(config));
}

absl::StatusOr<std::string> JobRunner::UploadCheckpoint(int64_t step) {
  LORA_ASSIGN_OR_RETURN(
      std::string snapshot,
      SnapshotFolder(output_dir_ + "/checkpoint", run_dir_ + "/snapshots"));
  // The child keeps training while the reporter catches up, so the folder
  // may already hold a later checkpoint than the line being reported.
  // Reported as `step`, it would let a resumed attempt skip steps whose
  // points are not acknowledged yet: pass it over (an empty id), and report
  // it at its own line, which follows.
  absl::StatusOr<int64_t> saved =
      CheckpointStep(snapshot + "/training_state.safetensors");
  if (saved.ok() && *saved != step) {
    RemoveTree(snapshot).IgnoreError();
    return std::string();
  }
  UploadOptions upload;
  upload.on_bytes_sent = options_.on_bytes_uploaded;
  absl::StatusOr<UploadedArtifact> uploaded = UploadFolder(
      channel_, snapshot, kTrainingCheckpoint,
      absl::StrCat("checkpoint-step-", step), job_.run().run_id(), upload);
  RemoveTree(snapshot).IgnoreError();
  if (!uploaded.ok()) return uploaded.status();
  return uploaded->artifact_id;
}

void JobRunner::Finish(v1::RunOutcome outcome, const std::string& error,
                       const std::string& adapter_id) {
  v1::FinishRunRequest request;
  request.set_run_id(job_.run().run_id());
  request.set_attempt(job_.attempt());
  request.set_lease_id(job_.lease_id());
  request.set_outcome(outcome);
  request.set_error(error);
  request.set_adapter_artifact_id(adapter_id);
  // A child that was killed or failed early leaves no (or a partial)
  // results.json: parse without exceptions, which would end the worker.
  std::ifstream results_file(output_dir_ + "/results.json");
  const nlohmann::json results =
      results_file ? nlohmann::json::parse(results_file, nullptr,
                                           /*allow_exceptions=*/false)
                   : nlohmann::json();
  if (results.is_object()) {
    const auto final_metrics = results.find("final_metrics");
    if (final_metrics != results.end() && final_metrics->is_object()) {
      for (const auto& [name, value] : final_metrics->items()) {
        if (value.is_number()) {
          (*request.mutable_final_metrics())[name] = value.get<double>();
        }
      }
    }
    const auto best = results.find("best");
    if (best != results.end() && best->is_object() && best->contains("value") &&
        (*best)["value"].is_number()) {
      request.set_best_metric((*best)["value"].get<double>());
      if (best->contains("epoch") && (*best)["epoch"].is_number_integer()) {
        request.set_best_epoch((*best)["epoch"].get<int32_t>());
      }
    }
  }
  // The coordinator may be restarting: keep trying for a while.
  const absl::Time give_up = absl::Now() + options_.finish_timeout;
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    v1::FinishRunResponse response;
    std::unique_ptr<grpc::ClientContext> context =
        channel_->NewContext(absl::Seconds(30));
    grpc::Status status =
        channel_->stub()->FinishRun(context.get(), request, &response);
    const bool retry =
        status.error_code() == grpc::StatusCode::UNAVAILABLE ||
        status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (!retry || absl::Now() >= give_up) return;
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

void JobRunner::Run() {
  auto end = [this](const std::string& outcome) {
    if (options_.on_child_exit) options_.on_child_exit(outcome);
    absl::MutexLock lock(&mutex_);
    outcome_ = outcome;
  };
  std::string job_file;
  if (absl::Status prepared = Prepare(&job_file); !prepared.ok()) {
    Finish(v1::RUN_OUTCOME_FAILED,
           absl::StrCat("preparing the job failed: ", prepared.ToString()), "");
    end("prepare_failed");
    done_.store(true);
    return;
  }
  const std::string stderr_path =
      absl::StrCat(run_dir_, "/stderr-attempt-", job_.attempt(), ".txt");
  ChildSpec spec;
  spec.argv = {options_.lora_train, "train", job_file, "--output-dir",
               output_dir_};
  spec.stdout_path =
      absl::StrCat(run_dir_, "/stdout-attempt-", job_.attempt(), ".txt");
  spec.stderr_path = stderr_path;
  spec.env["OMP_NUM_THREADS"] = absl::StrCat(options_.threads);
  if (!options_.omp_wait_policy.empty()) {
    spec.env["OMP_WAIT_POLICY"] = options_.omp_wait_policy;
  }
  if (options_.device.rfind("cuda:", 0) == 0) {
    spec.env["CUDA_VISIBLE_DEVICES"] = options_.device.substr(5);
  }
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Start(spec);
  if (!child.ok()) {
    Finish(
        v1::RUN_OUTCOME_FAILED,
        absl::StrCat("starting lora-train failed: ", child.status().ToString()),
        "");
    end("start_failed");
    done_.store(true);
    return;
  }

  ProgressReporterOptions reporting;
  reporting.run_id = job_.run().run_id();
  reporting.attempt = job_.attempt();
  reporting.lease_id = job_.lease_id();
  reporting.metrics_path = output_dir_ + "/metrics.jsonl";
  reporting.checkpoint_hook = [this](int64_t step) {
    return UploadCheckpoint(step);
  };
  reporting.on_record = [this](const nlohmann::json& record) {
    if (record.value("type", "") != "step") return;
    if (record.contains("tokens_per_second") &&
        record["tokens_per_second"].is_number()) {
      tokens_per_second_.store(record["tokens_per_second"].get<double>());
    }
    if (options_.on_step_seconds && record.contains("step_seconds") &&
        record["step_seconds"].is_number()) {
      options_.on_step_seconds(record["step_seconds"].get<double>());
    }
  };
  ProgressReporter reporter(channel_, reporting);
  reporter.Start();

  // Watch the child: its exit, stop orders, and signs of life.
  std::string stop_reason;
  bool hung = false;
  int64_t metrics_size = -1;
  absl::Time last_change = absl::Now();
  std::optional<ExitStatus> exit;
  while (!(exit = (*child)->Poll())) {
    step_.store(reporter.last_step());
    stop_reason = StopReason();
    if (stop_reason.empty() && reporter.stop_requested()) {
      stop_reason = reporter.stop_reason();
    }
    if (!stop_reason.empty()) {
      exit = (*child)->Terminate(options_.stop_grace);
      break;
    }
    const int64_t size = FileSize(reporting.metrics_path);
    const absl::Duration allowed =
        size > 0 ? options_.hang_timeout
                 : std::max(options_.hang_timeout, options_.startup_timeout);
    if (size != metrics_size) {
      metrics_size = size;
      last_change = absl::Now();
    } else if (absl::Now() - last_change > allowed) {
      hung = true;
      (*child)->Signal(SIGKILL);
      exit = (*child)->Wait(absl::InfiniteDuration());
      break;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }

  const bool ordered_off =
      stop_reason == "cancelled" || stop_reason == "lease_lost";
  if (!ordered_off) {
    // Everything the child wrote reaches the coordinator before the run
    // ends (checkpoints included, uploaded first).
    reporter.Flush(options_.finish_timeout).IgnoreError();
  }
  reporter.Stop();
  step_.store(reporter.last_step());

  if (ordered_off) {
    Finish(v1::RUN_OUTCOME_STOPPED, stop_reason, "");
    end(stop_reason);
  } else if (!stop_reason.empty()) {
    // Draining (or the worker exiting): the child checkpointed on SIGTERM;
    // give the run back so it resumes elsewhere.
    Finish(v1::RUN_OUTCOME_STOPPED, "worker stopped the job: " + stop_reason,
           "");
    end("stopped");
  } else if (hung) {
    Finish(v1::RUN_OUTCOME_FAILED,
           absl::StrCat("lora-train hung: no new metrics for ",
                        absl::FormatDuration(options_.hang_timeout),
                        "; killed\n", FileTail(stderr_path, 4096)),
           "");
    end("hung");
  } else if (!exit->success()) {
    Finish(v1::RUN_OUTCOME_FAILED,
           absl::StrCat("lora-train ", exit->Describe(), "\n",
                        FileTail(stderr_path, 4096)),
           "");
    end(exit->signal != 0 ? "signal" : "exit_error");
  } else {
    // Outputs: the adapter (or the full model of a full fine-tune / head
    // only run) and the run log, then the finish.
    const std::string exported = IsFolder(output_dir_ + "/adapter")
                                     ? output_dir_ + "/adapter"
                                     : output_dir_ + "/model";
    UploadOptions upload;
    upload.on_bytes_sent = options_.on_bytes_uploaded;
    absl::StatusOr<UploadedArtifact> adapter = UploadFolder(
        channel_, exported, kAdapter, "adapter", job_.run().run_id(), upload);
    const std::string log_dir = run_dir_ + "/run-log";
    RemoveTree(log_dir).IgnoreError();
    std::filesystem::create_directories(log_dir);
    std::error_code ignored;
    for (const char* file : {"results.json", "metrics.jsonl", "config.yaml"}) {
      std::filesystem::copy_file(output_dir_ + "/" + file, log_dir + "/" + file,
                                 ignored);
    }
    absl::StatusOr<UploadedArtifact> log = UploadFolder(
        channel_, log_dir, kRunLog, "run-log", job_.run().run_id(), upload);
    if (!adapter.ok() || !log.ok()) {
      Finish(v1::RUN_OUTCOME_FAILED,
             absl::StrCat(
                 "uploading the outputs failed: ",
                 (!adapter.ok() ? adapter.status() : log.status()).ToString()),
             "");
      end("upload_failed");
    } else {
      Finish(v1::RUN_OUTCOME_SUCCEEDED, "", adapter->artifact_id);
      end("succeeded");
    }
  }
  done_.store(true);
}

}  // namespace lora::worker
