// One leased job, end to end, on its own thread: fetch its inputs into the
// artifact cache, write its lora-train job file, run `lora-train train` as a
// child process, report its metrics durably (ProgressReporter) with every
// checkpoint uploaded before it is reported, then upload the adapter and
// the run log and finish the run — or report why it failed, was stopped or
// hung. Nothing here includes LibTorch: training happens in the child.
#ifndef LORA_SWEEP_WORKER_JOB_RUNNER_H_
#define LORA_SWEEP_WORKER_JOB_RUNNER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lora/v1/worker_service.pb.h"
#include "worker/artifact_transfer.h"
#include "worker/coordinator_channel.h"

namespace lora::worker {

struct JobRunnerOptions {
  std::string lora_train;      // path of the lora-train binary
  std::string work_dir;        // jobs run in <work_dir>/<run id>/
  int64_t threads = 2;         // per job
  std::string device = "cpu";  // cpu | cuda | cuda:N
  // OMP_WAIT_POLICY for the child (cpu_budget.h); empty: not set, so the
  // child inherits the worker's environment.
  std::string omp_wait_policy;
  // A child that writes no metrics for this long is killed as hung; before
  // its first metrics line (loading the model, tokenising) it may take
  // `startup_timeout` instead.
  absl::Duration hang_timeout = absl::Minutes(10);
  absl::Duration startup_timeout = absl::Minutes(10);
  // SIGTERM -> SIGKILL grace when a job must stop.
  absl::Duration stop_grace = absl::Seconds(30);
  // How long to keep trying to deliver the last metrics and the finish.
  absl::Duration finish_timeout = absl::Minutes(2);
  // Observers for worker metrics; optional, called from the job thread.
  std::function<void(const std::string& reason)> on_child_exit;
  std::function<void(int64_t bytes)> on_bytes_uploaded;
  // Each training step's wall time (from the child's step records).
  std::function<void(double seconds)> on_step_seconds;
};

class JobRunner {
 public:
  // `channel` and `cache` are not owned and must outlive the runner.
  JobRunner(CoordinatorChannel* channel, ArtifactCache* cache, v1::Job job,
            JobRunnerOptions options);
  // Stops the job (as RequestStop("worker exiting")) and joins.
  ~JobRunner();

  void Start();

  // Ends the child: "cancelled" and "lease_lost" (coordinator orders) end
  // the attempt without reporting more; "draining" lets the child
  // checkpoint, uploads the checkpoint and gives the run back to the queue.
  void RequestStop(const std::string& reason);

  bool done() const { return done_.load(); }
  const v1::Job& job() const { return job_; }
  // The lease as heartbeats name it.
  v1::HeldLease HeldLease() const;
  // How the job ended ("succeeded", "failed", "stopped", "hung", ...);
  // empty while running.
  std::string outcome() const;
  // Training throughput of the latest step record (0 before the first).
  double tokens_per_second() const { return tokens_per_second_.load(); }

 private:
  void Run();
  absl::Status Prepare(std::string* job_file);
  absl::StatusOr<std::string> UploadCheckpoint(int64_t step);
  void Finish(v1::RunOutcome outcome, const std::string& error,
              const std::string& adapter_id);
  std::string StopReason() const;

  CoordinatorChannel* const channel_;
  ArtifactCache* const cache_;
  const v1::Job job_;
  const JobRunnerOptions options_;
  const std::string run_dir_;
  const std::string output_dir_;

  std::thread thread_;
  std::atomic<bool> done_{false};
  std::atomic<int64_t> step_{0};
  std::atomic<double> tokens_per_second_{0.0};
  mutable absl::Mutex mutex_;
  std::string stop_reason_ ABSL_GUARDED_BY(mutex_);
  std::string outcome_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace lora::worker

#endif  // LORA_SWEEP_WORKER_JOB_RUNNER_H_
