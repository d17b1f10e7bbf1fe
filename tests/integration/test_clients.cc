#include "tests/integration/test_clients.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/grpc_status.h"
#include "sweep/artifact_manifest.h"
#include "tests/integration/lorad_process.h"

namespace lora::integration {

v1::MetricPoint Point(const std::string& name, int64_t step, int32_t epoch,
                      double value) {
  v1::MetricPoint point;
  point.set_name(name);
  point.set_step(step);
  point.set_epoch(epoch);
  point.set_value(value);
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  point.mutable_time()->set_seconds(now_ms / 1000);
  point.mutable_time()->set_nanos(static_cast<int32_t>(now_ms % 1000) *
                                  1000000);
  return point;
}

v1::ProgressBatch Batch(const v1::Job& job, int64_t sequence,
                        std::vector<v1::MetricPoint> points) {
  v1::ProgressBatch batch;
  batch.set_run_id(job.run().run_id());
  batch.set_attempt(job.attempt());
  batch.set_lease_id(job.lease_id());
  batch.set_sequence(sequence);
  for (v1::MetricPoint& point : points) *batch.add_points() = std::move(point);
  return batch;
}

v1::HeldLease HeldLeaseOf(const v1::Job& job, int64_t step) {
  v1::HeldLease lease;
  lease.set_run_id(job.run().run_id());
  lease.set_attempt(job.attempt());
  lease.set_lease_id(job.lease_id());
  lease.set_step(step);
  return lease;
}

// ---------------------------------------------------------------------------

ProgressStream::ProgressStream(v1::WorkerService::Stub* stub,
                               const std::string& token) {
  PrepareContext(&context_, token, absl::Seconds(60));
  stream_ = stub->ReportProgress(&context_);
}

ProgressStream::~ProgressStream() {
  if (!closed_) {
    context_.TryCancel();
    (void)Close();
  }
}

bool ProgressStream::Send(const v1::ProgressBatch& batch,
                          v1::ProgressAck* ack) {
  return stream_->Write(batch) && stream_->Read(ack);
}

bool ProgressStream::Write(const v1::ProgressBatch& batch) {
  return stream_->Write(batch);
}

grpc::Status ProgressStream::Close() {
  if (closed_) return grpc::Status(grpc::StatusCode::INTERNAL, "closed twice");
  closed_ = true;
  stream_->WritesDone();
  v1::ProgressAck ignored;
  while (stream_->Read(&ignored)) {
  }
  return stream_->Finish();
}

// ---------------------------------------------------------------------------

TestWorker::TestWorker(std::shared_ptr<grpc::Channel> channel, std::string name,
                       std::string token)
    : stub_(v1::WorkerService::NewStub(std::move(channel))),
      name_(std::move(name)),
      token_(std::move(token)) {}

void TestWorker::Reconnect(std::shared_ptr<grpc::Channel> channel) {
  stub_ = v1::WorkerService::NewStub(std::move(channel));
}

grpc::Status TestWorker::Register(v1::RegisterWorkerResponse* reply) {
  v1::RegisterWorkerRequest request;
  request.set_name(name_);
  request.mutable_capabilities()->set_device(v1::DEVICE_KIND_CPU);
  request.mutable_capabilities()->set_cpu_threads(1);
  request.mutable_capabilities()->set_max_concurrent_jobs(4);
  request.mutable_capabilities()->set_worker_version("integration-test");
  v1::RegisterWorkerResponse local;
  if (reply == nullptr) reply = &local;
  grpc::ClientContext context;
  PrepareContext(&context, token_);
  grpc::Status status = stub_->RegisterWorker(&context, request, reply);
  if (status.ok()) worker_id_ = reply->worker_id();
  return status;
}

grpc::Status TestWorker::Heartbeat(const std::vector<v1::HeldLease>& leases,
                                   v1::HeartbeatResponse* reply) {
  v1::HeartbeatRequest request;
  request.set_worker_id(worker_id_);
  for (const v1::HeldLease& lease : leases) *request.add_leases() = lease;
  request.set_free_slots(
      std::max<int32_t>(0, 4 - static_cast<int32_t>(leases.size())));
  grpc::ClientContext context;
  PrepareContext(&context, token_);
  return stub_->Heartbeat(&context, request, reply);
}

grpc::Status TestWorker::Acquire(absl::Duration wait,
                                 v1::AcquireJobResponse* reply) {
  v1::AcquireJobRequest request;
  request.set_worker_id(worker_id_);
  const int64_t wait_ms = absl::ToInt64Milliseconds(wait);
  request.mutable_wait()->set_seconds(wait_ms / 1000);
  request.mutable_wait()->set_nanos(static_cast<int32_t>(wait_ms % 1000) *
                                    1000000);
  grpc::ClientContext context;
  PrepareContext(&context, token_, wait + absl::Seconds(15));
  return stub_->AcquireJob(&context, request, reply);
}

grpc::Status TestWorker::Finish(const v1::Job& job, v1::RunOutcome outcome,
                                v1::FinishRunResponse* reply,
                                const std::string& error) {
  v1::FinishRunRequest request;
  request.set_run_id(job.run().run_id());
  request.set_attempt(job.attempt());
  request.set_lease_id(job.lease_id());
  request.set_outcome(outcome);
  request.set_error(error);
  grpc::ClientContext context;
  PrepareContext(&context, token_);
  return stub_->FinishRun(&context, request, reply);
}

std::unique_ptr<ProgressStream> TestWorker::OpenProgress() {
  return std::make_unique<ProgressStream>(stub_.get(), token_);
}

absl::StatusOr<v1::UploadArtifactResponse> TestWorker::UploadFolder(
    const std::string& folder, v1::ArtifactKind kind, const std::string& run_id,
    size_t chunk_bytes) {
  absl::StatusOr<sweep::ArtifactManifest> manifest =
      sweep::ManifestOfFolder(folder);
  if (!manifest.ok()) return manifest.status();
  v1::UploadArtifactResponse reply;
  grpc::ClientContext context;
  PrepareContext(&context, token_, absl::Seconds(60));
  std::unique_ptr<grpc::ClientWriter<v1::UploadArtifactRequest>> writer =
      stub_->UploadArtifact(&context, &reply);
  v1::UploadArtifactRequest first;
  v1::Artifact& artifact = *first.mutable_manifest();
  artifact.set_artifact_id(manifest->artifact_id);
  artifact.set_kind(kind);
  artifact.set_name(folder.substr(folder.rfind('/') + 1));
  artifact.set_size_bytes(manifest->size_bytes);
  artifact.set_run_id(run_id);
  for (const sweep::ArtifactFileEntry& file : manifest->files) {
    v1::ArtifactFile& out = *artifact.add_files();
    out.set_path(file.path);
    out.set_size_bytes(file.size_bytes);
    out.set_sha256(file.sha256);
  }
  bool ok = writer->Write(first);
  for (const sweep::ArtifactFileEntry& file : manifest->files) {
    if (!ok) break;
    std::ifstream in(folder + "/" + file.path, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    const std::string data = bytes.str();
    for (size_t offset = 0; ok && offset < data.size(); offset += chunk_bytes) {
      v1::UploadArtifactRequest chunk;
      chunk.mutable_chunk()->set_path(file.path);
      chunk.mutable_chunk()->set_offset(static_cast<int64_t>(offset));
      chunk.mutable_chunk()->set_data(data.substr(offset, chunk_bytes));
      ok = writer->Write(chunk);
    }
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  return reply;
}

absl::StatusOr<DownloadedArtifact> TestWorker::Download(
    const std::string& artifact_id) {
  v1::DownloadArtifactRequest request;
  request.set_artifact_id(artifact_id);
  grpc::ClientContext context;
  PrepareContext(&context, token_, absl::Seconds(60));
  std::unique_ptr<grpc::ClientReader<v1::DownloadArtifactResponse>> reader =
      stub_->DownloadArtifact(&context, request);
  DownloadedArtifact result;
  v1::DownloadArtifactResponse part;
  bool first = true;
  while (reader->Read(&part)) {
    if (first) {
      if (!part.has_manifest()) {
        context.TryCancel();
        (void)reader->Finish();
        return absl::DataLossError("first message is not the manifest");
      }
      result.manifest = part.manifest();
      first = false;
      continue;
    }
    const v1::ArtifactChunk& chunk = part.chunk();
    std::string& file = result.files[chunk.path()];
    if (static_cast<int64_t>(file.size()) != chunk.offset()) {
      context.TryCancel();
      (void)reader->Finish();
      return absl::DataLossError(
          absl::StrCat(chunk.path(), ": chunk at offset ", chunk.offset(),
                       " after ", file.size(), " bytes"));
    }
    file += chunk.data();
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  return result;
}

// ---------------------------------------------------------------------------

Heartbeater::Heartbeater(TestWorker* worker, std::vector<v1::HeldLease> leases,
                         absl::Duration interval)
    : stub_(worker->stub()),
      worker_id_(worker->worker_id()),
      token_(worker->token()),
      leases_(std::move(leases)),
      interval_(interval),
      thread_([this] { Loop(); }) {}

Heartbeater::~Heartbeater() { Stop(); }

void Heartbeater::Stop() {
  {
    absl::MutexLock lock(&mutex_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

int Heartbeater::beats() {
  absl::MutexLock lock(&mutex_);
  return beats_;
}

std::string Heartbeater::error() {
  absl::MutexLock lock(&mutex_);
  return error_;
}

void Heartbeater::Loop() {
  while (true) {
    {
      absl::MutexLock lock(&mutex_);
      if (mutex_.AwaitWithTimeout(absl::Condition(&stop_), interval_)) return;
    }
    v1::HeartbeatRequest request;
    request.set_worker_id(worker_id_);
    for (const v1::HeldLease& lease : leases_) *request.add_leases() = lease;
    v1::HeartbeatResponse reply;
    grpc::ClientContext context;
    PrepareContext(&context, token_, absl::Seconds(5));
    grpc::Status status = stub_->Heartbeat(&context, request, &reply);
    absl::MutexLock lock(&mutex_);
    if (status.ok() && reply.stop_size() == 0) {
      ++beats_;
    } else if (error_.empty()) {
      error_ = status.ok() ? "told to stop: " + reply.stop(0).reason()
                           : status.error_message();
    }
  }
}

// ---------------------------------------------------------------------------

grpc::Status SubmitYaml(v1::SweepService::Stub* stub, const std::string& yaml,
                        v1::SubmitSweepResponse* reply, bool retry_failed,
                        const std::string& token) {
  v1::SubmitSweepRequest request;
  request.set_spec_yaml(yaml);
  request.set_source_name("sweep.yaml");
  request.set_retry_failed(retry_failed);
  grpc::ClientContext context;
  PrepareContext(&context, token);
  return stub->SubmitSweep(&context, request, reply);
}

absl::StatusOr<std::vector<v1::Run>> ListAllRuns(v1::SweepService::Stub* stub,
                                                 const std::string& sweep_id,
                                                 int32_t page_size) {
  std::vector<v1::Run> runs;
  std::string token;
  for (int page = 0; page < 10000; ++page) {
    v1::ListRunsRequest request;
    request.set_sweep_id(sweep_id);
    request.set_page_size(page_size);
    request.set_page_token(token);
    v1::ListRunsResponse reply;
    grpc::ClientContext context;
    PrepareContext(&context, "");
    grpc::Status status = stub->ListRuns(&context, request, &reply);
    if (!status.ok()) return FromGrpcStatus(status);
    for (const v1::Run& run : reply.runs()) runs.push_back(run);
    if (reply.next_page_token().empty()) return runs;
    token = reply.next_page_token();
  }
  return absl::InternalError("ListRuns never ended");
}

absl::StatusOr<v1::Run> GetRun(v1::SweepService::Stub* stub,
                               const std::string& run_id) {
  v1::GetRunRequest request;
  request.set_run_id(run_id);
  v1::Run run;
  grpc::ClientContext context;
  PrepareContext(&context, "");
  grpc::Status status = stub->GetRun(&context, request, &run);
  if (!status.ok()) return FromGrpcStatus(status);
  return run;
}

absl::StatusOr<v1::Sweep> GetSweep(v1::SweepService::Stub* stub,
                                   const std::string& sweep_id) {
  v1::GetSweepRequest request;
  request.set_sweep_id(sweep_id);
  v1::Sweep sweep;
  grpc::ClientContext context;
  PrepareContext(&context, "");
  grpc::Status status = stub->GetSweep(&context, request, &sweep);
  if (!status.ok()) return FromGrpcStatus(status);
  return sweep;
}

WatchResult WatchToEnd(v1::SweepService::Stub* stub,
                       const std::string& sweep_id, int64_t after_sequence,
                       bool include_metrics, absl::Duration timeout) {
  v1::WatchSweepRequest request;
  request.set_sweep_id(sweep_id);
  request.set_after_sequence(after_sequence);
  request.set_include_metrics(include_metrics);
  grpc::ClientContext context;
  PrepareContext(&context, "", timeout);
  std::unique_ptr<grpc::ClientReader<v1::SweepEvent>> reader =
      stub->WatchSweep(&context, request);
  WatchResult result;
  v1::SweepEvent event;
  while (reader->Read(&event)) result.events.push_back(event);
  result.status = reader->Finish();
  return result;
}

absl::Status WaitForSweepState(v1::SweepService::Stub* stub,
                               const std::string& sweep_id,
                               v1::SweepState state, absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  v1::SweepState last = v1::SWEEP_STATE_UNSPECIFIED;
  while (absl::Now() < give_up) {
    absl::StatusOr<v1::Sweep> sweep = GetSweep(stub, sweep_id);
    if (!sweep.ok()) return sweep.status();
    last = sweep->state();
    if (last == state) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "sweep ", sweep_id, " is ", v1::SweepState_Name(last), ", not ",
      v1::SweepState_Name(state), " after ", absl::FormatDuration(timeout)));
}

}  // namespace lora::integration
