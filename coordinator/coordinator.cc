#include "coordinator/coordinator.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/sha256.h"
#include "base/status_macros.h"

namespace lora::coordinator {
namespace {

WorkerOffer OfferOf(const std::string& worker_id,
                    const v1::WorkerCapabilities& capabilities) {
  WorkerOffer offer;
  offer.worker_id = worker_id;
  offer.device = capabilities.device() == v1::DEVICE_KIND_CUDA ? "cuda" : "cpu";
  offer.gpu_count = capabilities.gpu_count();
  offer.labels = {capabilities.labels().begin(), capabilities.labels().end()};
  offer.free_slots = std::max(1, capabilities.max_concurrent_jobs());
  return offer;
}

bool Active(RunState state) {
  return state == RunState::kLeased || state == RunState::kRunning;
}

}  // namespace

Coordinator::Coordinator(RunStore* store, const Clock* clock,
                         CoordinatorOptions options,
                         std::function<absl::StatusOr<std::string>(
                             const std::string&, const std::string&)>
                             read_artifact_file)
    : store_(store), clock_(clock), options_(std::move(options)) {
  validation_ = CoordinatorValidationOptions(store_, options_.max_runs,
                                             std::move(read_artifact_file));
  absl::StatusOr<std::vector<WorkerRecord>> workers = store_->ListWorkers();
  if (workers.ok()) {
    for (const WorkerRecord& record : *workers) {
      v1::WorkerCapabilities capabilities;
      capabilities.ParseFromString(record.capabilities);
      WorkerState state;
      state.record = record;
      state.offer = OfferOf(record.worker_id, capabilities);
      state.max_concurrent_jobs = state.offer.free_slots;
      workers_[record.worker_id] = std::move(state);
    }
  }
}

int64_t Coordinator::NowMs() const { return absl::ToUnixMillis(clock_->Now()); }

std::string Coordinator::LeaseId(const std::string& run_id, int64_t attempt,
                                 const std::string& worker_id) {
  return "lease-" +
         Sha256Hex(absl::StrCat(run_id, "/", attempt, "/", worker_id))
             .substr(0, 16);
}

void Coordinator::NotifyChange() {
  absl::MutexLock lock(&mutex_);
  ++changes_;
}

int64_t Coordinator::ChangeCount() const {
  absl::MutexLock lock(&mutex_);
  return changes_;
}

void Coordinator::WaitForChange(int64_t seen, absl::Time deadline) const {
  absl::MutexLock lock(&mutex_);
  auto changed = [this, seen]() ABSL_SHARED_LOCKS_REQUIRED(mutex_) {
    return changes_ != seen || shutdown_;
  };
  mutex_.AwaitWithDeadline(absl::Condition(&changed), deadline);
}

void Coordinator::Shutdown() {
  absl::MutexLock lock(&mutex_);
  shutdown_ = true;
}

bool Coordinator::shutting_down() const {
  absl::MutexLock lock(&mutex_);
  return shutdown_;
}

absl::StatusOr<SubmitResult> Coordinator::Submit(SubmitRequest request) {
  request.now_ms = NowMs();
  LORA_ASSIGN_OR_RETURN(SubmitResult result,
                        SubmitSweep(store_, request, validation_));
  if (!request.dry_run) {
    spdlog::info("sweep {} \"{}\" {}: {} runs{}", result.sweep.sweep_id,
                 result.sweep.name,
                 result.already_existed ? "resubmitted" : "submitted",
                 result.runs.size(),
                 result.requeued_runs > 0
                     ? absl::StrCat(", ", result.requeued_runs, " requeued")
                     : "");
    NotifyChange();
  }
  return result;
}

absl::StatusOr<SweepRecord> Coordinator::CancelSweep(
    const std::string& sweep_id) {
  LORA_ASSIGN_OR_RETURN(SweepRecord sweep,
                        store_->CancelSweep(sweep_id, NowMs()));
  spdlog::info("sweep {} cancelled", sweep_id);
  NotifyChange();
  return sweep;
}

absl::StatusOr<RunRecord> Coordinator::CancelRun(const std::string& run_id) {
  RunTransition cancel;
  cancel.kind = RunTransition::Kind::kCancel;
  cancel.now_ms = NowMs();
  LORA_ASSIGN_OR_RETURN(RunRecord run, store_->TransitionRun(run_id, cancel));
  spdlog::info("run {} of sweep {} cancelled", run_id, run.sweep_id);
  NotifyChange();
  return run;
}

absl::StatusOr<WorkerState> Coordinator::RegisterWorker(
    const std::string& name, const v1::WorkerCapabilities& capabilities) {
  if (name.empty()) {
    return absl::InvalidArgumentError("name: a worker needs a name");
  }
  const std::string worker_id = "w-" + Sha256Hex(name).substr(0, 16);
  WorkerState state;
  state.record.worker_id = worker_id;
  state.record.name = name;
  state.record.capabilities = capabilities.SerializeAsString();
  state.record.register_ms = NowMs();
  state.record.last_heartbeat_ms = state.record.register_ms;
  state.offer = OfferOf(worker_id, capabilities);
  state.max_concurrent_jobs = state.offer.free_slots;
  LORA_RETURN_IF_ERROR(store_->UpsertWorker(state.record));
  // A worker registering again was restarted: the jobs it held are gone.
  RunFilter held;
  held.states = {RunState::kLeased, RunState::kRunning};
  held.limit = 100000;
  LORA_ASSIGN_OR_RETURN(std::vector<RunRecord> runs, store_->ListRuns(held));
  bool released = false;
  for (const RunRecord& run : runs) {
    if (run.lifecycle.worker_id != worker_id) continue;
    RunTransition fail;
    fail.kind = RunTransition::Kind::kFail;
    fail.now_ms = NowMs();
    fail.worker_id = worker_id;
    fail.attempt = run.lifecycle.attempt;
    fail.error = absl::StrCat("worker ", name, " restarted during attempt ",
                              run.lifecycle.attempt);
    if (store_->TransitionRun(run.run_id, fail).ok()) released = true;
  }
  {
    absl::MutexLock lock(&mutex_);
    workers_[worker_id] = state;
  }
  spdlog::info("worker {} registered as {} ({}, {} slots)", name, worker_id,
               state.offer.device, state.max_concurrent_jobs);
  if (released) NotifyChange();
  return state;
}

std::vector<WorkerState> Coordinator::Workers() const {
  absl::MutexLock lock(&mutex_);
  std::vector<WorkerState> workers;
  for (const auto& [id, state] : workers_) workers.push_back(state);
  return workers;
}

absl::Status Coordinator::CheckLease(const RunRecord& run, int64_t attempt,
                                     const std::string& lease_id) const {
  if (!Active(run.lifecycle.state) || run.lifecycle.attempt != attempt ||
      LeaseId(run.run_id, attempt, run.lifecycle.worker_id) != lease_id) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run ", run.run_id, " attempt ", attempt, ": lease lost (the run is ",
        RunStateName(run.lifecycle.state), " at attempt ",
        run.lifecycle.attempt, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<HeartbeatResult> Coordinator::Heartbeat(
    const std::string& worker_id, const std::vector<HeldLeaseReport>& held,
    int64_t free_slots) {
  const int64_t now = NowMs();
  WorkerRecord record;
  {
    absl::MutexLock lock(&mutex_);
    auto worker = workers_.find(worker_id);
    if (worker == workers_.end()) {
      return absl::NotFoundError(
          absl::StrCat("unknown worker ", worker_id, "; register again"));
    }
    worker->second.record.last_heartbeat_ms = now;
    worker->second.offer.free_slots = free_slots;
    record = worker->second.record;
  }
  LORA_RETURN_IF_ERROR(store_->UpsertWorker(record));
  HeartbeatResult result;
  result.lease_expire_ms = now + options_.timing.lease_ttl_ms;
  for (const HeldLeaseReport& lease : held) {
    absl::StatusOr<RunRecord> run = store_->GetRun(lease.run_id);
    if (!run.ok()) {
      result.stop.push_back({lease.run_id, lease.attempt, "lease_lost"});
      continue;
    }
    if (run->lifecycle.state == RunState::kCancelled) {
      result.stop.push_back({lease.run_id, lease.attempt, "cancelled"});
      continue;
    }
    if (!CheckLease(*run, lease.attempt, lease.lease_id).ok() ||
        run->lifecycle.worker_id != worker_id) {
      result.stop.push_back({lease.run_id, lease.attempt, "lease_lost"});
      continue;
    }
    RunTransition renew;
    renew.kind = RunTransition::Kind::kRenewLease;
    renew.now_ms = now;
    renew.worker_id = worker_id;
    renew.attempt = lease.attempt;
    renew.lease_expire_ms = result.lease_expire_ms;
    if (!store_->TransitionRun(lease.run_id, renew).ok()) {
      result.stop.push_back({lease.run_id, lease.attempt, "lease_lost"});
    }
  }
  return result;
}

absl::StatusOr<std::optional<LeasedJob>> Coordinator::TryAcquireJob(
    const std::string& worker_id) {
  WorkerOffer offer;
  {
    absl::MutexLock lock(&mutex_);
    auto worker = workers_.find(worker_id);
    if (worker == workers_.end()) {
      return absl::NotFoundError(
          absl::StrCat("unknown worker ", worker_id, "; register again"));
    }
    offer = worker->second.offer;
    offer.free_slots = std::max<int64_t>(offer.free_slots, 1);
  }
  absl::MutexLock leasing(&lease_mutex_);
  RunFilter filter;
  filter.states = {RunState::kPending};
  filter.limit = 100000;
  LORA_ASSIGN_OR_RETURN(std::vector<RunRecord> runs, store_->ListRuns(filter));
  if (runs.empty()) return std::optional<LeasedJob>();
  std::map<std::string, SweepRecord> sweeps;
  std::map<std::string, int64_t> active;
  std::vector<PendingRun> pending;
  pending.reserve(runs.size());
  for (const RunRecord& run : runs) {
    auto sweep = sweeps.find(run.sweep_id);
    if (sweep == sweeps.end()) {
      LORA_ASSIGN_OR_RETURN(SweepRecord record, store_->GetSweep(run.sweep_id));
      sweep = sweeps.emplace(run.sweep_id, std::move(record)).first;
      active[run.sweep_id] =
          sweep->second.counts.leased + sweep->second.counts.running;
    }
    PendingRun candidate;
    candidate.run_id = run.run_id;
    candidate.sweep_id = run.sweep_id;
    candidate.sweep_priority = sweep->second.priority;
    candidate.sweep_create_ms = sweep->second.create_ms;
    candidate.index = run.index;
    candidate.attempt = run.lifecycle.attempt;
    candidate.device = run.device;
    candidate.gpus = run.gpus;
    candidate.worker_labels = run.worker_labels;
    pending.push_back(std::move(candidate));
  }
  std::optional<std::string> chosen = ChooseRun(pending, offer, active);
  if (!chosen) return std::optional<LeasedJob>();
  RunTransition lease;
  lease.kind = RunTransition::Kind::kLease;
  lease.now_ms = NowMs();
  lease.worker_id = worker_id;
  lease.lease_expire_ms = lease.now_ms + options_.timing.lease_ttl_ms;
  LORA_ASSIGN_OR_RETURN(RunRecord run, store_->TransitionRun(*chosen, lease));
  spdlog::info("run {} of sweep {} leased to worker {} (attempt {})",
               run.run_id, run.sweep_id, worker_id, run.lifecycle.attempt);
  const SweepRecord& sweep = sweeps.at(run.sweep_id);
  LeasedJob job;
  job.lease_id = LeaseId(run.run_id, run.lifecycle.attempt, worker_id);
  job.metric_name = sweep.metric_name;
  job.metric_maximize = sweep.metric_maximize;
  job.run = std::move(run);
  NotifyChange();
  return std::optional<LeasedJob>(std::move(job));
}

absl::StatusOr<ProgressResult> Coordinator::ReportProgress(
    const ProgressReport& report) {
  ProgressResult result;
  LORA_ASSIGN_OR_RETURN(RunRecord run, store_->GetRun(report.run_id));
  if (run.lifecycle.state == RunState::kCancelled) {
    result.stop = true;
    result.stop_reason = "cancelled";
    return result;
  }
  if (!CheckLease(run, report.attempt, report.lease_id).ok()) {
    result.stop = true;
    result.stop_reason = "lease_lost";
    return result;
  }
  const int64_t now = NowMs();
  const std::string& worker_id = run.lifecycle.worker_id;
  if (!report.points.empty() || run.lifecycle.state == RunState::kLeased) {
    absl::StatusOr<AppendMetricsResult> appended = store_->AppendMetrics(
        report.run_id, report.attempt, report.points, now);
    if (!appended.ok()) {
      if (appended.status().code() == absl::StatusCode::kFailedPrecondition) {
        result.stop = true;
        result.stop_reason = "lease_lost";
        return result;
      }
      return appended.status();
    }
  }
  if (!report.checkpoint_artifact_id.empty()) {
    RunTransition checkpoint;
    checkpoint.kind = RunTransition::Kind::kCheckpoint;
    checkpoint.now_ms = now;
    checkpoint.worker_id = worker_id;
    checkpoint.attempt = report.attempt;
    checkpoint.artifact_id = report.checkpoint_artifact_id;
    LORA_RETURN_IF_ERROR(
        store_->TransitionRun(report.run_id, checkpoint).status());
  }
  RunTransition renew;
  renew.kind = RunTransition::Kind::kRenewLease;
  renew.now_ms = now;
  renew.worker_id = worker_id;
  renew.attempt = report.attempt;
  renew.lease_expire_ms = now + options_.timing.lease_ttl_ms;
  LORA_RETURN_IF_ERROR(store_->TransitionRun(report.run_id, renew).status());
  result.committed = true;
  result.lease_expire_ms = renew.lease_expire_ms;
  int64_t step = 0;
  for (const MetricPoint& point : report.points) {
    step = std::max(step, point.step);
  }
  NoteProgress(report.run_id, step, now);
  NotifyChange();
  return result;
}

absl::StatusOr<RunRecord> Coordinator::FinishRun(const FinishReport& report) {
  LORA_ASSIGN_OR_RETURN(RunRecord run, store_->GetRun(report.run_id));
  // A repeated report of an attempt that already ended changes nothing. A
  // success reported for an older attempt is never a repeat (a recorded
  // success ends the run at that attempt): that attempt lost its lease, and
  // CheckLease refuses it so the worker knows its result was not recorded.
  const bool older_attempt = run.lifecycle.attempt > report.attempt;
  if ((older_attempt && report.outcome != AttemptOutcome::kSucceeded) ||
      (IsTerminal(run.lifecycle.state) &&
       run.lifecycle.attempt == report.attempt)) {
    return run;
  }
  LORA_RETURN_IF_ERROR(CheckLease(run, report.attempt, report.lease_id));
  RunTransition end;
  end.now_ms = NowMs();
  end.worker_id = run.lifecycle.worker_id;
  end.attempt = report.attempt;
  switch (report.outcome) {
    case AttemptOutcome::kSucceeded:
      end.kind = RunTransition::Kind::kSucceed;
      end.artifact_id = report.adapter_artifact_id;
      break;
    case AttemptOutcome::kFailed:
      end.kind = RunTransition::Kind::kFail;
      end.error = report.error.empty() ? "the attempt failed" : report.error;
      break;
    case AttemptOutcome::kStopped:
      // Stopped on our order: a cancelled run is already final. Otherwise
      // the worker gave the run up (it is draining): the run goes back to
      // the queue at once, to resume from its last checkpoint elsewhere.
      if (IsTerminal(run.lifecycle.state)) return run;
      end.kind = RunTransition::Kind::kFail;
      end.error =
          report.error.empty() ? "the worker gave the run up" : report.error;
      break;
  }
  LORA_ASSIGN_OR_RETURN(RunRecord after,
                        store_->TransitionRun(report.run_id, end));
  spdlog::info("run {} of sweep {} attempt {} on worker {}: {}{}", after.run_id,
               after.sweep_id, report.attempt, end.worker_id,
               RunStateName(after.lifecycle.state),
               end.error.empty() ? "" : " (" + end.error.substr(0, 200) + ")");
  NotifyChange();
  return after;
}

void Coordinator::NoteProgress(const std::string& run_id, int64_t step,
                               int64_t now_ms) {
  absl::MutexLock lock(&mutex_);
  auto [entry, added] = progress_.emplace(run_id, std::make_pair(step, now_ms));
  if (!added && step > entry->second.first) entry->second = {step, now_ms};
}

std::map<std::string, int64_t> Coordinator::StalledBySweep() {
  std::map<std::string, int64_t> stalled;
  RunFilter filter;
  filter.states = {RunState::kRunning};
  filter.limit = 100000;
  absl::StatusOr<std::vector<RunRecord>> runs = store_->ListRuns(filter);
  if (!runs.ok()) return stalled;
  const int64_t now = NowMs();
  for (const RunRecord& run : *runs) NoteProgress(run.run_id, run.step, now);
  absl::MutexLock lock(&mutex_);
  std::map<std::string, std::pair<int64_t, int64_t>> live;
  for (const RunRecord& run : *runs) {
    const auto& [step, since] = progress_.at(run.run_id);
    live[run.run_id] = {step, since};
    if (Stalled(since, now, options_.stall_after_ms)) ++stalled[run.sweep_id];
  }
  progress_.swap(live);  // forget runs that are no longer RUNNING
  return stalled;
}

int64_t Coordinator::ExpireLeases() {
  const int64_t now = NowMs();
  RunFilter filter;
  filter.states = {RunState::kLeased, RunState::kRunning};
  filter.limit = 100000;
  absl::StatusOr<std::vector<RunRecord>> runs = store_->ListRuns(filter);
  if (!runs.ok()) return 0;
  std::vector<HeldRun> held;
  for (const RunRecord& run : *runs) {
    held.push_back({run.run_id, run.lifecycle.lease_expire_ms});
  }
  int64_t expired = 0;
  for (const std::string& run_id : ExpiredLeases(held, now)) {
    RunTransition expire;
    expire.kind = RunTransition::Kind::kExpireLease;
    expire.now_ms = now;
    absl::StatusOr<RunRecord> run = store_->TransitionRun(run_id, expire);
    if (run.ok()) {
      ++expired;
      spdlog::warn("run {} of sweep {}: lease expired; now {} at attempt {}",
                   run_id, run->sweep_id, RunStateName(run->lifecycle.state),
                   run->lifecycle.attempt);
    }
  }
  if (expired > 0) NotifyChange();
  return expired;
}

}  // namespace lora::coordinator
