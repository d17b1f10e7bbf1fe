#include "coordinator/grpc_services.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <list>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/grpc_status.h"
#include "coordinator/proto_convert.h"
#include "coordinator/results.h"
#include "google/protobuf/duration.pb.h"

namespace lora::coordinator {
namespace {

std::string AuthorizationOf(const grpc::CallbackServerContext* context) {
  const auto& metadata = context->client_metadata();
  auto found = metadata.find("authorization");
  if (found == metadata.end()) return "";
  return std::string(found->second.data(), found->second.size());
}

google::protobuf::Duration Millis(int64_t ms) {
  google::protobuf::Duration duration;
  duration.set_seconds(ms / 1000);
  duration.set_nanos(static_cast<int32_t>(ms % 1000) * 1000000);
  return duration;
}

int64_t PageSize(int64_t requested, const ServiceOptions& options) {
  if (requested <= 0) return options.default_page_size;
  return std::min(requested, options.max_page_size);
}

// Latest value of every metric of a run.
void FillLatestMetrics(RunStore* store, v1::Run* run) {
  absl::StatusOr<std::vector<MetricRecord>> series =
      store->ReadMetricSeries(run->run_id(), "");
  if (!series.ok()) return;
  std::map<std::string, std::pair<int64_t, double>> latest;
  for (const MetricRecord& record : *series) {
    auto& slot = latest[record.point.name];
    if (record.point.step >= slot.first || slot.first == 0) {
      slot = {record.point.step, record.point.value};
    }
  }
  for (const auto& [name, value] : latest) {
    (*run->mutable_latest_metrics())[name] = value.second;
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// Long-polls and watches, served by one thread.
// ---------------------------------------------------------------------------

class Watcher : public grpc::ServerWriteReactor<v1::SweepEvent> {
 public:
  Watcher(RunStore* store, const ServiceOptions& options, std::string sweep_id,
          int64_t after_sequence, bool include_metrics)
      : store_(store),
        options_(options),
        sweep_id_(std::move(sweep_id)),
        read_after_(after_sequence),
        sent_(after_sequence),
        include_metrics_(include_metrics) {}

  // Refills the buffer from the store and starts a write when idle; ends
  // the stream when the sweep is over and everything was sent.
  void Pump() {
    Step step;
    {
      absl::MutexLock lock(&mutex_);
      step = PlanLocked();
    }
    Apply(step);
  }

  void End(grpc::Status status) {
    {
      absl::MutexLock lock(&mutex_);
      if (finished_) return;
      finished_ = true;
    }
    Finish(std::move(status));
  }

  bool done() const { return done_.load(); }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      End(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      return;
    }
    Step step;
    {
      absl::MutexLock lock(&mutex_);
      writing_ = false;
      sent_ = buffer_.front().sequence();
      buffer_.pop_front();
      step = PlanLocked();
    }
    Apply(step);
  }

  void OnCancel() override {
    End(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
  }

  void OnDone() override { done_.store(true); }

 private:
  // What to do once the lock is released: gRPC may run reactions inline,
  // so StartWrite and Finish are never called under mutex_.
  struct Step {
    const v1::SweepEvent* write = nullptr;
    std::optional<grpc::Status> finish;
  };

  void Apply(Step& step) {
    if (step.write != nullptr) StartWrite(step.write);
    if (step.finish) Finish(std::move(*step.finish));
  }

  Step FinishWith(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    Step step;
    if (!finished_) {
      finished_ = true;
      step.finish = std::move(status);
    }
    return step;
  }

  Step PlanLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    Step step;
    if (finished_ || writing_) return step;
    if (buffer_.empty()) {
      absl::StatusOr<SweepRecord> sweep = store_->GetSweep(sweep_id_);
      if (!sweep.ok()) return FinishWith(ToGrpcStatus(sweep.status()));
      // The backlog that existed when the watch began may be replayed at
      // any pace; falling behind means events that arrived since then
      // piling up unsent.
      if (start_head_ < 0) start_head_ = sweep->last_sequence;
      const int64_t behind =
          sweep->last_sequence - std::max(sent_, start_head_);
      if (behind > options_.watch_max_lag_events) {
        return FinishWith(grpc::Status(
            grpc::StatusCode::RESOURCE_EXHAUSTED,
            absl::StrCat(
                "watcher fell ", behind,
                " events behind; resume with after_sequence=", sent_)));
      }
      absl::StatusOr<std::vector<EventRecord>> events =
          store_->ReadEvents(sweep_id_, read_after_,
                             options_.watch_buffer_events, include_metrics_);
      if (!events.ok()) return FinishWith(ToGrpcStatus(events.status()));
      for (const EventRecord& event : *events) {
        buffer_.push_back(ToProto(event));
        read_after_ = event.sequence;
      }
      if (buffer_.empty()) {
        // Everything up to the sweep's newest event was considered (metric
        // events are skipped without include_metrics).
        read_after_ = std::max(read_after_, sweep->last_sequence);
        sent_ = std::max(sent_, read_after_);
        if (IsTerminalSweep(sweep->state)) return FinishWith(grpc::Status::OK);
        return step;
      }
    }
    writing_ = true;
    step.write = &buffer_.front();
    return step;
  }

  static bool IsTerminalSweep(SweepState state) {
    return state == SweepState::kSucceeded || state == SweepState::kFailed ||
           state == SweepState::kCancelled;
  }

  RunStore* const store_;
  const ServiceOptions& options_;
  const std::string sweep_id_;
  absl::Mutex mutex_;
  // A deque keeps the front element in place while later ones are added.
  std::deque<v1::SweepEvent> buffer_ ABSL_GUARDED_BY(mutex_);
  int64_t read_after_ ABSL_GUARDED_BY(mutex_);
  int64_t sent_ ABSL_GUARDED_BY(mutex_);
  // The sweep's newest sequence when the watch began (-1 before the first
  // look).
  int64_t start_head_ ABSL_GUARDED_BY(mutex_) = -1;
  bool writing_ ABSL_GUARDED_BY(mutex_) = false;
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
  const bool include_metrics_;
  std::atomic<bool> done_{false};
};

class DispatchLoop {
 public:
  DispatchLoop(Coordinator* coordinator, const ServiceOptions& options)
      : coordinator_(coordinator), options_(options) {}

  ~DispatchLoop() { Stop(); }

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }

  void Stop() {
    {
      absl::MutexLock lock(&mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    coordinator_->Shutdown();
    if (thread_.joinable()) thread_.join();
    absl::MutexLock lock(&mutex_);
    for (Acquire& acquire : acquires_) {
      acquire.reactor->Finish(
          grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator stopping"));
    }
    acquires_.clear();
    for (auto& watcher : watchers_) {
      watcher->End(
          grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator stopping"));
    }
    // Reactors are freed once gRPC is done with them (OnDone).
    const absl::Time give_up = absl::Now() + absl::Seconds(5);
    while (absl::Now() < give_up) {
      bool all_done = true;
      for (auto& watcher : watchers_) all_done = all_done && watcher->done();
      if (all_done) break;
      mutex_.Unlock();
      absl::SleepFor(absl::Milliseconds(10));
      mutex_.Lock();
    }
    watchers_.remove_if([](const auto& watcher) { return watcher->done(); });
  }

  // Takes a long-poll: answered by the loop when a job is leased to the
  // worker or the deadline passes.
  void AddAcquire(const std::string& worker_id, absl::Time deadline,
                  grpc::ServerUnaryReactor* reactor,
                  grpc::CallbackServerContext* context,
                  v1::AcquireJobResponse* response,
                  std::function<void(const LeasedJob&)> fill) {
    absl::MutexLock lock(&mutex_);
    if (stopping_) {
      reactor->Finish(
          grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator stopping"));
      return;
    }
    acquires_.push_back(
        {worker_id, deadline, reactor, context, response, std::move(fill)});
    wake_ = true;
  }

  // Registers a watcher; false when the limit of watchers is reached.
  bool AddWatcher(std::unique_ptr<Watcher> watcher) {
    absl::MutexLock lock(&mutex_);
    watchers_.remove_if([](const auto& w) { return w->done(); });
    if (stopping_ ||
        static_cast<int64_t>(watchers_.size()) >= options_.max_watchers) {
      watcher->End(stopping_
                       ? grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                      "coordinator stopping; retry")
                       : grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                      "too many watchers; retry later"));
      watchers_.push_back(std::move(watcher));
      return false;
    }
    Watcher* raw = watcher.get();
    watchers_.push_back(std::move(watcher));
    raw->Pump();
    return true;
  }

 private:
  struct Acquire {
    std::string worker_id;
    absl::Time deadline;
    grpc::ServerUnaryReactor* reactor;
    grpc::CallbackServerContext* context;
    v1::AcquireJobResponse* response;
    std::function<void(const LeasedJob&)> fill;
  };

  void Run() {
    absl::Time next_expiry = absl::Now();
    while (true) {
      const int64_t seen = coordinator_->ChangeCount();
      {
        absl::MutexLock lock(&mutex_);
        if (stopping_) return;
        wake_ = false;
      }
      if (absl::Now() >= next_expiry) {
        coordinator_->ExpireLeases();
        next_expiry =
            absl::Now() +
            absl::Milliseconds(std::max<int64_t>(
                100, coordinator_->options().timing.heartbeat_interval_ms / 2));
      }
      ServeAcquires();
      PumpWatchers();
      absl::Time wake_at = std::min(next_expiry, NextDeadline());
      wake_at = std::min(wake_at, absl::Now() + absl::Milliseconds(200));
      coordinator_->WaitForChange(seen, wake_at);
    }
  }

  absl::Time NextDeadline() {
    absl::MutexLock lock(&mutex_);
    absl::Time next = absl::InfiniteFuture();
    for (const Acquire& acquire : acquires_) {
      next = std::min(next, acquire.deadline);
    }
    return next;
  }

  void ServeAcquires() {
    std::vector<Acquire> waiting;
    {
      absl::MutexLock lock(&mutex_);
      waiting.swap(acquires_);
    }
    std::vector<Acquire> still_waiting;
    const absl::Time now = absl::Now();
    for (Acquire& acquire : waiting) {
      if (acquire.context->IsCancelled()) {
        acquire.reactor->Finish(
            grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
        continue;
      }
      absl::StatusOr<std::optional<LeasedJob>> job =
          coordinator_->TryAcquireJob(acquire.worker_id);
      if (!job.ok()) {
        acquire.reactor->Finish(ToGrpcStatus(job.status()));
      } else if (job->has_value()) {
        acquire.fill(**job);
        acquire.reactor->Finish(grpc::Status::OK);
      } else if (now >= acquire.deadline) {
        acquire.reactor->Finish(grpc::Status::OK);  // no job this time
      } else {
        still_waiting.push_back(std::move(acquire));
      }
    }
    absl::MutexLock lock(&mutex_);
    for (Acquire& acquire : still_waiting) {
      acquires_.push_back(std::move(acquire));
    }
  }

  void PumpWatchers() {
    absl::MutexLock lock(&mutex_);
    watchers_.remove_if([](const auto& watcher) { return watcher->done(); });
    for (auto& watcher : watchers_) watcher->Pump();
  }

  Coordinator* const coordinator_;
  const ServiceOptions& options_;
  std::thread thread_;
  absl::Mutex mutex_;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  bool wake_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<Acquire> acquires_ ABSL_GUARDED_BY(mutex_);
  std::list<std::unique_ptr<Watcher>> watchers_ ABSL_GUARDED_BY(mutex_);
};

// ---------------------------------------------------------------------------
// Artifact streams, shared by both services.
// ---------------------------------------------------------------------------

namespace {

class UploadReactor
    : public grpc::ServerReadReactor<v1::UploadArtifactRequest> {
 public:
  UploadReactor(ArtifactStore* artifacts, Coordinator* coordinator,
                v1::UploadArtifactResponse* response)
      : artifacts_(artifacts), coordinator_(coordinator), response_(response) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client closed its side: every chunk has arrived.
      if (session_ == nullptr) {
        Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "upload without a manifest"));
        return;
      }
      absl::StatusOr<UploadResult> result =
          session_->Finish(coordinator_->NowMs());
      if (!result.ok()) {
        Finish(ToGrpcStatus(result.status()));
        return;
      }
      response_->set_already_existed(result->already_existed);
      absl::StatusOr<ArtifactRecord> record =
          artifacts_->Get(manifest_.artifact_id);
      if (record.ok()) *response_->mutable_artifact() = ToProto(*record, true);
      Finish(grpc::Status::OK);
      return;
    }
    absl::Status status = Handle();
    if (!status.ok()) {
      if (session_ != nullptr) session_->Abort();
      Finish(ToGrpcStatus(status));
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  absl::Status Handle() {
    if (request_.has_manifest()) {
      if (session_ != nullptr) {
        return absl::InvalidArgumentError("manifest sent twice");
      }
      const v1::Artifact& artifact = request_.manifest();
      manifest_.artifact_id = artifact.artifact_id();
      manifest_.size_bytes = artifact.size_bytes();
      for (const v1::ArtifactFile& file : artifact.files()) {
        manifest_.files.push_back(
            {file.path(), file.size_bytes(), file.sha256()});
      }
      absl::StatusOr<std::unique_ptr<UploadSession>> session =
          artifacts_->BeginUpload(manifest_, artifact.kind(), artifact.name(),
                                  artifact.run_id());
      if (!session.ok()) return session.status();
      session_ = std::move(*session);
      return absl::OkStatus();
    }
    if (session_ == nullptr) {
      return absl::InvalidArgumentError(
          "the first message of an upload must be the manifest");
    }
    const v1::ArtifactChunk& chunk = request_.chunk();
    return session_->Write(chunk.path(), chunk.offset(), chunk.data());
  }

  ArtifactStore* const artifacts_;
  Coordinator* const coordinator_;
  v1::UploadArtifactResponse* const response_;
  v1::UploadArtifactRequest request_;
  sweep::ArtifactManifest manifest_;
  std::unique_ptr<UploadSession> session_;
};

class DownloadReactor
    : public grpc::ServerWriteReactor<v1::DownloadArtifactResponse> {
 public:
  DownloadReactor(ArtifactStore* artifacts, const std::string& artifact_id) {
    absl::StatusOr<ArtifactRecord> record = artifacts->Get(artifact_id);
    if (!record.ok()) {
      Finish(ToGrpcStatus(record.status()));
      return;
    }
    absl::StatusOr<std::unique_ptr<ArtifactReader>> reader =
        artifacts->OpenReader(artifact_id);
    if (!reader.ok()) {
      Finish(ToGrpcStatus(reader.status()));
      return;
    }
    reader_ = std::move(*reader);
    *response_.mutable_manifest() = ToProto(*record, true);
    StartWrite(&response_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "download cancelled"));
      return;
    }
    FileChunk chunk;
    absl::StatusOr<bool> more = reader_->Next(&chunk);
    if (!more.ok()) {
      Finish(ToGrpcStatus(more.status()));
      return;
    }
    if (!*more) {
      Finish(grpc::Status::OK);
      return;
    }
    response_.Clear();
    v1::ArtifactChunk& out = *response_.mutable_chunk();
    out.set_path(chunk.path);
    out.set_offset(chunk.offset);
    out.set_data(std::move(chunk.data));
    StartWrite(&response_);
  }

  void OnDone() override { delete this; }

 private:
  std::unique_ptr<ArtifactReader> reader_;
  v1::DownloadArtifactResponse response_;
};

}  // namespace

// ---------------------------------------------------------------------------
// What both services share: authorisation, unary completion, artifacts.
// ---------------------------------------------------------------------------

namespace {

// A stream refused before it starts.
template <typename Reactor>
Reactor* Refused(const absl::Status& status) {
  class RefusedReactor : public Reactor {
   public:
    explicit RefusedReactor(const absl::Status& status) {
      this->Finish(ToGrpcStatus(status));
    }
    void OnDone() override { delete this; }
  };
  return new RefusedReactor(status);
}

// `value` converted into `*out`, or its error.
template <typename T, typename Out, typename Convert>
absl::Status Reply(absl::StatusOr<T> value, Out* out, Convert convert) {
  if (!value.ok()) return value.status();
  *out = convert(*value);
  return absl::OkStatus();
}

class CallGuard {
 protected:
  CallGuard(Coordinator* coordinator, ArtifactStore* artifacts,
            const ServiceOptions& options, ApiKind api)
      : coordinator_(coordinator),
        artifacts_(artifacts),
        options_(options),
        api_(api) {}

  absl::Status Authorize(grpc::CallbackServerContext* context) const {
    if (!options_.authorize) return absl::OkStatus();
    return options_.authorize(AuthorizationOf(context), api_);
  }

  // Runs `handler` (returning absl::Status) after authorisation and
  // finishes the call with its status.
  template <typename Handler>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* context,
                                  Handler handler) const {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    absl::Status status = Authorize(context);
    if (status.ok()) status = handler();
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }

  grpc::ServerReadReactor<v1::UploadArtifactRequest>* Upload(
      grpc::CallbackServerContext* context,
      v1::UploadArtifactResponse* response) const {
    absl::Status status = Authorize(context);
    if (!status.ok()) {
      return Refused<grpc::ServerReadReactor<v1::UploadArtifactRequest>>(
          status);
    }
    return new UploadReactor(artifacts_, coordinator_, response);
  }

  grpc::ServerWriteReactor<v1::DownloadArtifactResponse>* Download(
      grpc::CallbackServerContext* context,
      const v1::DownloadArtifactRequest* request) const {
    absl::Status status = Authorize(context);
    if (!status.ok()) {
      return Refused<grpc::ServerWriteReactor<v1::DownloadArtifactResponse>>(
          status);
    }
    return new DownloadReactor(artifacts_, request->artifact_id());
  }

  Coordinator* const coordinator_;
  ArtifactStore* const artifacts_;
  const ServiceOptions& options_;

 private:
  const ApiKind api_;
};

}  // namespace

// ---------------------------------------------------------------------------
// SweepService.
// ---------------------------------------------------------------------------

class CoordinatorServices::SweepServiceImpl
    : public v1::SweepService::CallbackService,
      private CallGuard {
 public:
  SweepServiceImpl(Coordinator* coordinator, ArtifactStore* artifacts,
                   const ServiceOptions& options, DispatchLoop* dispatch)
      : CallGuard(coordinator, artifacts, options, ApiKind::kSweepService),
        store_(coordinator->store()),
        dispatch_(dispatch) {}

  grpc::ServerUnaryReactor* SubmitSweep(
      grpc::CallbackServerContext* context,
      const v1::SubmitSweepRequest* request,
      v1::SubmitSweepResponse* response) override {
    return Unary(context, [&]() -> absl::Status {
      std::string spec_yaml = request->spec_yaml();
      if (request->has_spec_struct()) {
        absl::StatusOr<std::string> converted =
            SweepSpecToYaml(request->spec_struct());
        if (!converted.ok()) return converted.status();
        spec_yaml = *converted;
      }
      SubmitRequest submit;
      submit.spec_yaml = spec_yaml;
      submit.source_name = !request->source_name().empty()
                               ? request->source_name()
                           : request->has_spec_struct() ? "spec_struct"
                                                        : "sweep.yaml";
      submit.dry_run = request->dry_run();
      submit.retry_failed = request->retry_failed();
      absl::StatusOr<SubmitResult> result = coordinator_->Submit(submit);
      if (!result.ok()) return result.status();
      *response->mutable_sweep() = ToProto(result->sweep);
      for (const RunRecord& run : result->runs) {
        *response->add_runs() = ToProto(run);
      }
      response->set_already_existed(result->already_existed);
      response->set_requeued_runs(static_cast<int32_t>(result->requeued_runs));
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* GetSweep(grpc::CallbackServerContext* context,
                                     const v1::GetSweepRequest* request,
                                     v1::Sweep* response) override {
    return Unary(context, [&] {
      return Reply(store_->GetSweep(request->sweep_id()), response,
                   [](const SweepRecord& sweep) { return ToProto(sweep); });
    });
  }

  grpc::ServerUnaryReactor* ListSweeps(
      grpc::CallbackServerContext* context,
      const v1::ListSweepsRequest* request,
      v1::ListSweepsResponse* response) override {
    return Unary(context, [&]() -> absl::Status {
      const int64_t page = PageSize(request->page_size(), options_);
      std::string after = request->page_token();
      while (response->sweeps_size() < page) {
        absl::StatusOr<std::vector<SweepRecord>> sweeps =
            store_->ListSweeps(after, page);
        if (!sweeps.ok()) return sweeps.status();
        for (const SweepRecord& sweep : *sweeps) {
          after = sweep.sweep_id;
          bool wanted = request->states().empty();
          for (int state : request->states()) {
            wanted = wanted || state == static_cast<int>(sweep.state);
          }
          if (wanted) *response->add_sweeps() = ToProto(sweep);
          if (response->sweeps_size() == page) break;
        }
        if (static_cast<int64_t>(sweeps->size()) < page) {
          after.clear();
          break;
        }
      }
      if (response->sweeps_size() == page) {
        response->set_next_page_token(after);
      }
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* ListRuns(grpc::CallbackServerContext* context,
                                     const v1::ListRunsRequest* request,
                                     v1::ListRunsResponse* response) override {
    return Unary(context, [&]() -> absl::Status {
      RunFilter filter;
      filter.sweep_id = request->sweep_id();
      for (int state : request->states()) {
        absl::StatusOr<RunState> parsed =
            FromProto(static_cast<v1::RunState>(state));
        if (!parsed.ok()) return parsed.status();
        filter.states.push_back(*parsed);
      }
      filter.after_run_id = request->page_token();
      filter.limit = PageSize(request->page_size(), options_);
      absl::StatusOr<std::vector<RunRecord>> runs = store_->ListRuns(filter);
      if (!runs.ok()) return runs.status();
      for (const RunRecord& run : *runs) {
        v1::Run& out = *response->add_runs();
        out = ToProto(run);
        FillLatestMetrics(store_, &out);
      }
      if (static_cast<int64_t>(runs->size()) == filter.limit) {
        response->set_next_page_token(runs->back().run_id);
      }
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* GetRun(grpc::CallbackServerContext* context,
                                   const v1::GetRunRequest* request,
                                   v1::Run* response) override {
    return Unary(context, [&]() -> absl::Status {
      absl::StatusOr<RunRecord> run = store_->GetRun(request->run_id());
      if (!run.ok()) return run.status();
      *response = ToProto(*run);
      FillLatestMetrics(store_, response);
      return absl::OkStatus();
    });
  }

  grpc::ServerWriteReactor<v1::SweepEvent>* WatchSweep(
      grpc::CallbackServerContext* context,
      const v1::WatchSweepRequest* request) override {
    auto watcher = std::make_unique<Watcher>(
        store_, options_, request->sweep_id(), request->after_sequence(),
        request->include_metrics());
    Watcher* raw = watcher.get();
    absl::Status status = Authorize(context);
    if (status.ok()) status = store_->GetSweep(request->sweep_id()).status();
    if (!status.ok()) {
      raw->End(ToGrpcStatus(status));
      // Freed by the dispatcher once gRPC is done with it.
      dispatch_->AddWatcher(std::move(watcher));
      return raw;
    }
    dispatch_->AddWatcher(std::move(watcher));
    return raw;
  }

  grpc::ServerUnaryReactor* CancelSweep(grpc::CallbackServerContext* context,
                                        const v1::CancelSweepRequest* request,
                                        v1::Sweep* response) override {
    return Unary(context, [&] {
      return Reply(coordinator_->CancelSweep(request->sweep_id()), response,
                   [](const SweepRecord& sweep) { return ToProto(sweep); });
    });
  }

  grpc::ServerUnaryReactor* CancelRun(grpc::CallbackServerContext* context,
                                      const v1::CancelRunRequest* request,
                                      v1::Run* response) override {
    return Unary(context, [&] {
      return Reply(coordinator_->CancelRun(request->run_id()), response,
                   [](const RunRecord& run) { return ToProto(run); });
    });
  }

  grpc::ServerUnaryReactor* GetResults(
      grpc::CallbackServerContext* context,
      const v1::GetResultsRequest* request,
      v1::GetResultsResponse* response) override {
    return Unary(context, [&] {
      return Reply(
          BuildResults(store_, request->sweep_id(), request->group_by()),
          response,
          [](v1::GetResultsResponse& results) { return std::move(results); });
    });
  }

  grpc::ServerUnaryReactor* ListWorkers(
      grpc::CallbackServerContext* context,
      const v1::ListWorkersRequest* request,
      v1::ListWorkersResponse* response) override {
    return Unary(context, [&]() -> absl::Status {
      RunFilter held;
      held.states = {RunState::kLeased, RunState::kRunning};
      held.limit = 100000;
      absl::StatusOr<std::vector<RunRecord>> runs = store_->ListRuns(held);
      if (!runs.ok()) return runs.status();
      const int64_t now = coordinator_->NowMs();
      for (const WorkerState& state : coordinator_->Workers()) {
        const bool up = WorkerUp(state.record.last_heartbeat_ms, now,
                                 coordinator_->options().timing);
        if (!up && !request->include_down()) continue;
        v1::Worker& worker = *response->add_workers();
        worker.set_worker_id(state.record.worker_id);
        worker.set_name(state.record.name);
        worker.mutable_capabilities()->ParseFromString(
            state.record.capabilities);
        worker.set_up(up);
        *worker.mutable_register_time() = ToTimestamp(state.record.register_ms);
        *worker.mutable_last_heartbeat_time() =
            ToTimestamp(state.record.last_heartbeat_ms);
        for (const RunRecord& run : *runs) {
          if (run.lifecycle.worker_id == state.record.worker_id) {
            worker.add_running_run_ids(run.run_id);
          }
        }
      }
      return absl::OkStatus();
    });
  }

  grpc::ServerReadReactor<v1::UploadArtifactRequest>* UploadArtifact(
      grpc::CallbackServerContext* context,
      v1::UploadArtifactResponse* response) override {
    return Upload(context, response);
  }

  grpc::ServerUnaryReactor* GetArtifact(grpc::CallbackServerContext* context,
                                        const v1::GetArtifactRequest* request,
                                        v1::Artifact* response) override {
    return Unary(context, [&] {
      return Reply(artifacts_->Get(request->artifact_id()), response,
                   [](const ArtifactRecord& artifact) {
                     return ToProto(artifact, true);
                   });
    });
  }

  grpc::ServerUnaryReactor* ListArtifacts(
      grpc::CallbackServerContext* context,
      const v1::ListArtifactsRequest* request,
      v1::ListArtifactsResponse* response) override {
    return Unary(context, [&]() -> absl::Status {
      const int64_t page = PageSize(request->page_size(), options_);
      absl::StatusOr<std::vector<ArtifactRecord>> artifacts =
          store_->ListArtifacts(request->kind(), request->run_id(),
                                request->page_token(), page);
      if (!artifacts.ok()) return artifacts.status();
      for (const ArtifactRecord& artifact : *artifacts) {
        *response->add_artifacts() = ToProto(artifact, false);
      }
      if (static_cast<int64_t>(artifacts->size()) == page) {
        response->set_next_page_token(artifacts->back().artifact_id);
      }
      return absl::OkStatus();
    });
  }

  grpc::ServerWriteReactor<v1::DownloadArtifactResponse>* DownloadArtifact(
      grpc::CallbackServerContext* context,
      const v1::DownloadArtifactRequest* request) override {
    return Download(context, request);
  }

 private:
  RunStore* const store_;
  DispatchLoop* const dispatch_;
};

// ---------------------------------------------------------------------------
// WorkerService.
// ---------------------------------------------------------------------------

namespace {

class ProgressStream
    : public grpc::ServerBidiReactor<v1::ProgressBatch, v1::ProgressAck> {
 public:
  ProgressStream(Coordinator* coordinator, const ServiceOptions& options)
      : coordinator_(coordinator), options_(options) {
    StartRead(&batch_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    ProgressReport report;
    report.run_id = batch_.run_id();
    report.attempt = batch_.attempt();
    report.lease_id = batch_.lease_id();
    report.checkpoint_artifact_id = batch_.checkpoint_artifact_id();
    for (const v1::MetricPoint& point : batch_.points()) {
      report.points.push_back(FromProto(point));
    }
    absl::StatusOr<ProgressResult> result =
        coordinator_->ReportProgress(report);
    if (!result.ok()) {
      Finish(ToGrpcStatus(result.status()));
      return;
    }
    if (result->committed) {
      acked_ = std::max(acked_, batch_.sequence());
      if (options_.count_ingested) {
        options_.count_ingested(static_cast<int64_t>(report.points.size()));
      }
    }
    ack_.Clear();
    ack_.set_acked_sequence(acked_);
    ack_.set_stop(result->stop);
    ack_.set_stop_reason(result->stop_reason);
    if (result->lease_expire_ms > 0) {
      *ack_.mutable_lease_expire_time() = ToTimestamp(result->lease_expire_ms);
    }
    StartWrite(&ack_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "ack not delivered"));
      return;
    }
    StartRead(&batch_);
  }

  void OnDone() override { delete this; }

 private:
  Coordinator* const coordinator_;
  const ServiceOptions& options_;
  v1::ProgressBatch batch_;
  v1::ProgressAck ack_;
  int64_t acked_ = 0;
};

}  // namespace

class CoordinatorServices::WorkerServiceImpl
    : public v1::WorkerService::CallbackService,
      private CallGuard {
 public:
  WorkerServiceImpl(Coordinator* coordinator, ArtifactStore* artifacts,
                    const ServiceOptions& options, DispatchLoop* dispatch)
      : CallGuard(coordinator, artifacts, options, ApiKind::kWorkerService),
        dispatch_(dispatch) {}

  grpc::ServerUnaryReactor* RegisterWorker(
      grpc::CallbackServerContext* context,
      const v1::RegisterWorkerRequest* request,
      v1::RegisterWorkerResponse* response) override {
    return Unary(context, [&]() -> absl::Status {
      absl::StatusOr<WorkerState> worker = coordinator_->RegisterWorker(
          request->name(), request->capabilities());
      if (!worker.ok()) return worker.status();
      response->set_worker_id(worker->record.worker_id);
      const LeaseTiming& timing = coordinator_->options().timing;
      *response->mutable_heartbeat_interval() =
          Millis(timing.heartbeat_interval_ms);
      *response->mutable_lease_ttl() = Millis(timing.lease_ttl_ms);
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* Heartbeat(
      grpc::CallbackServerContext* context, const v1::HeartbeatRequest* request,
      v1::HeartbeatResponse* response) override {
    return Unary(context, [&]() -> absl::Status {
      std::vector<HeldLeaseReport> held;
      for (const v1::HeldLease& lease : request->leases()) {
        held.push_back(
            {lease.run_id(), lease.attempt(), lease.lease_id(), lease.step()});
      }
      absl::StatusOr<HeartbeatResult> result = coordinator_->Heartbeat(
          request->worker_id(), held, request->free_slots());
      if (!result.ok()) return result.status();
      for (const StopOrder& stop : result->stop) {
        v1::StopCommand& command = *response->add_stop();
        command.set_run_id(stop.run_id);
        command.set_attempt(static_cast<int32_t>(stop.attempt));
        command.set_reason(stop.reason);
      }
      *response->mutable_lease_expire_time() =
          ToTimestamp(result->lease_expire_ms);
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* AcquireJob(
      grpc::CallbackServerContext* context,
      const v1::AcquireJobRequest* request,
      v1::AcquireJobResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    absl::Status status = Authorize(context);
    if (!status.ok()) {
      reactor->Finish(ToGrpcStatus(status));
      return reactor;
    }
    const int64_t wait_ms = std::clamp<int64_t>(
        request->wait().seconds() * 1000 + request->wait().nanos() / 1000000, 0,
        options_.max_acquire_wait_ms);
    const absl::Time asked = absl::Now();
    dispatch_->AddAcquire(
        request->worker_id(), asked + absl::Milliseconds(wait_ms), reactor,
        context, response, [this, response, asked](const LeasedJob& job) {
          v1::Job& out = *response->mutable_job();
          *out.mutable_run() = ToProto(job.run);
          out.set_lease_id(job.lease_id);
          out.set_attempt(static_cast<int32_t>(job.run.lifecycle.attempt));
          *out.mutable_lease_expire_time() =
              ToTimestamp(job.run.lifecycle.lease_expire_ms);
          out.set_resume_checkpoint_artifact_id(
              job.run.lifecycle.checkpoint_artifact_id);
          out.set_config_yaml(job.run.config_yaml);
          out.mutable_metric()->set_name(job.metric_name);
          out.mutable_metric()->set_goal(job.metric_maximize
                                             ? v1::METRIC_GOAL_MAXIMIZE
                                             : v1::METRIC_GOAL_MINIMIZE);
          if (options_.observe_dispatch) {
            options_.observe_dispatch(
                absl::ToDoubleSeconds(absl::Now() - asked));
          }
        });
    return reactor;
  }

  grpc::ServerBidiReactor<v1::ProgressBatch, v1::ProgressAck>* ReportProgress(
      grpc::CallbackServerContext* context) override {
    absl::Status status = Authorize(context);
    if (!status.ok()) {
      return Refused<
          grpc::ServerBidiReactor<v1::ProgressBatch, v1::ProgressAck>>(status);
    }
    return new ProgressStream(coordinator_, options_);
  }

  grpc::ServerUnaryReactor* FinishRun(
      grpc::CallbackServerContext* context, const v1::FinishRunRequest* request,
      v1::FinishRunResponse* response) override {
    return Unary(context, [&]() -> absl::Status {
      FinishReport report;
      report.run_id = request->run_id();
      report.attempt = request->attempt();
      report.lease_id = request->lease_id();
      switch (request->outcome()) {
        case v1::RUN_OUTCOME_SUCCEEDED:
          report.outcome = AttemptOutcome::kSucceeded;
          break;
        case v1::RUN_OUTCOME_FAILED:
          report.outcome = AttemptOutcome::kFailed;
          break;
        case v1::RUN_OUTCOME_STOPPED:
          report.outcome = AttemptOutcome::kStopped;
          break;
        default:
          return absl::InvalidArgumentError(
              "outcome: expected SUCCEEDED, FAILED or STOPPED");
      }
      report.error = request->error();
      report.adapter_artifact_id = request->adapter_artifact_id();
      absl::StatusOr<RunRecord> run = coordinator_->FinishRun(report);
      if (!run.ok()) return run.status();
      response->set_state(ToProto(run->lifecycle.state));
      return absl::OkStatus();
    });
  }

  grpc::ServerReadReactor<v1::UploadArtifactRequest>* UploadArtifact(
      grpc::CallbackServerContext* context,
      v1::UploadArtifactResponse* response) override {
    return Upload(context, response);
  }

  grpc::ServerWriteReactor<v1::DownloadArtifactResponse>* DownloadArtifact(
      grpc::CallbackServerContext* context,
      const v1::DownloadArtifactRequest* request) override {
    return Download(context, request);
  }

 private:
  DispatchLoop* const dispatch_;
};

CoordinatorServices::CoordinatorServices(Coordinator* coordinator,
                                         ArtifactStore* artifacts,
                                         ServiceOptions options)
    : coordinator_(coordinator),
      artifacts_(artifacts),
      options_(std::move(options)),
      dispatch_(std::make_unique<DispatchLoop>(coordinator, options_)),
      sweep_(std::make_unique<SweepServiceImpl>(coordinator, artifacts,
                                                options_, dispatch_.get())),
      worker_(std::make_unique<WorkerServiceImpl>(coordinator, artifacts,
                                                  options_, dispatch_.get())) {}

CoordinatorServices::~CoordinatorServices() { Shutdown(); }

v1::SweepService::CallbackService* CoordinatorServices::sweep_service() {
  return sweep_.get();
}

v1::WorkerService::CallbackService* CoordinatorServices::worker_service() {
  return worker_.get();
}

void CoordinatorServices::Start() { dispatch_->Start(); }

void CoordinatorServices::Shutdown() { dispatch_->Stop(); }

}  // namespace lora::coordinator
