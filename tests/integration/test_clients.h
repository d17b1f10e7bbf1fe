// Test clients of a real lorad: TestWorker plays a lora-worker over
// WorkerService (register, heartbeat, lease, progress, finish, artifacts)
// without training anything, and free functions wrap the SweepService calls
// the integration tests repeat. Every call carries a deadline, so a daemon
// that hangs fails a test instead of blocking it.
//
// Thread safety: a TestWorker and a ProgressStream belong to one thread at a
// time; different objects may be used from different threads.
#ifndef LORA_SWEEP_TESTS_INTEGRATION_TEST_CLIENTS_H_
#define LORA_SWEEP_TESTS_INTEGRATION_TEST_CLIENTS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lora/v1/sweep_service.grpc.pb.h"
#include "lora/v1/worker_service.grpc.pb.h"

namespace lora::integration {

v1::MetricPoint Point(const std::string& name, int64_t step, int32_t epoch,
                      double value);

// A batch for `job`'s lease.
v1::ProgressBatch Batch(const v1::Job& job, int64_t sequence,
                        std::vector<v1::MetricPoint> points);

// The lease of `job` as a Heartbeat names it.
v1::HeldLease HeldLeaseOf(const v1::Job& job, int64_t step = 0);

// One ReportProgress stream.
class ProgressStream {
 public:
  ProgressStream(v1::WorkerService::Stub* stub, const std::string& token);
  ~ProgressStream();

  // Writes a batch and reads its ack; false when the stream broke (then
  // Close() says why).
  bool Send(const v1::ProgressBatch& batch, v1::ProgressAck* ack);
  // Writes a batch without waiting for its ack.
  bool Write(const v1::ProgressBatch& batch);
  // Ends the stream (acks not read yet are dropped) and returns its status.
  grpc::Status Close();

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ProgressBatch, v1::ProgressAck>>
      stream_;
  bool closed_ = false;
};

// An artifact as downloaded: its manifest and every file's bytes.
struct DownloadedArtifact {
  v1::Artifact manifest;
  std::map<std::string, std::string> files;  // path -> bytes
};

class TestWorker {
 public:
  TestWorker(std::shared_ptr<grpc::Channel> channel, std::string name,
             std::string token = "");

  // Talk to another daemon (a restarted one) from now on; the worker id
  // stays.
  void Reconnect(std::shared_ptr<grpc::Channel> channel);

  grpc::Status Register(v1::RegisterWorkerResponse* reply = nullptr);
  const std::string& worker_id() const { return worker_id_; }
  const std::string& name() const { return name_; }

  grpc::Status Heartbeat(const std::vector<v1::HeldLease>& leases,
                         v1::HeartbeatResponse* reply);
  // Long-polls AcquireJob for up to `wait`; reply->has_job() when leased.
  grpc::Status Acquire(absl::Duration wait, v1::AcquireJobResponse* reply);
  grpc::Status Finish(const v1::Job& job, v1::RunOutcome outcome,
                      v1::FinishRunResponse* reply,
                      const std::string& error = "");
  std::unique_ptr<ProgressStream> OpenProgress();

  // Uploads every file under `folder` (manifest from ManifestOfFolder) in
  // chunks of at most `chunk_bytes`.
  absl::StatusOr<v1::UploadArtifactResponse> UploadFolder(
      const std::string& folder, v1::ArtifactKind kind,
      const std::string& run_id, size_t chunk_bytes = 1 << 20);
  absl::StatusOr<DownloadedArtifact> Download(const std::string& artifact_id);

  v1::WorkerService::Stub* stub() { return stub_.get(); }
  const std::string& token() const { return token_; }

 private:
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  const std::string name_;
  const std::string token_;
  std::string worker_id_;
};

// Heartbeats for a worker on its own thread, every `interval`, naming
// `leases`, until Stop() or destruction: the background liveness a real
// worker keeps while it trains.
class Heartbeater {
 public:
  Heartbeater(TestWorker* worker, std::vector<v1::HeldLease> leases,
              absl::Duration interval = absl::Milliseconds(200));
  ~Heartbeater();
  // Ends the thread; no heartbeat is sent after it returns.
  void Stop();
  // Heartbeats answered OK so far, and the first error ("" if none).
  int beats();
  std::string error();

 private:
  void Loop();

  v1::WorkerService::Stub* const stub_;
  const std::string worker_id_;
  const std::string token_;
  const std::vector<v1::HeldLease> leases_;
  const absl::Duration interval_;
  absl::Mutex mutex_;
  bool stop_ ABSL_GUARDED_BY(mutex_) = false;
  int beats_ ABSL_GUARDED_BY(mutex_) = 0;
  std::string error_ ABSL_GUARDED_BY(mutex_);
  std::thread thread_;
};

// --- SweepService helpers. ---

grpc::Status SubmitYaml(v1::SweepService::Stub* stub, const std::string& yaml,
                        v1::SubmitSweepResponse* reply,
                        bool retry_failed = false,
                        const std::string& token = "");

// Every run of a sweep, paging through ListRuns (`page_size` per call).
absl::StatusOr<std::vector<v1::Run>> ListAllRuns(v1::SweepService::Stub* stub,
                                                 const std::string& sweep_id,
                                                 int32_t page_size = 3);

absl::StatusOr<v1::Run> GetRun(v1::SweepService::Stub* stub,
                               const std::string& run_id);
absl::StatusOr<v1::Sweep> GetSweep(v1::SweepService::Stub* stub,
                                   const std::string& sweep_id);

// Reads a WatchSweep stream to its end (the sweep terminal, or `timeout`).
struct WatchResult {
  std::vector<v1::SweepEvent> events;
  grpc::Status status;
};
WatchResult WatchToEnd(v1::SweepService::Stub* stub,
                       const std::string& sweep_id, int64_t after_sequence,
                       bool include_metrics,
                       absl::Duration timeout = absl::Seconds(30));

// Polls GetSweep until the sweep is in `state` or `timeout` passes.
absl::Status WaitForSweepState(v1::SweepService::Stub* stub,
                               const std::string& sweep_id,
                               v1::SweepState state,
                               absl::Duration timeout = absl::Seconds(20));

}  // namespace lora::integration

#endif  // LORA_SWEEP_TESTS_INTEGRATION_TEST_CLIENTS_H_
