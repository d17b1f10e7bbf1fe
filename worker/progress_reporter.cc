#include "worker/progress_reporter.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"

namespace lora::worker {

ProgressReporter::ProgressReporter(CoordinatorChannel* channel,
                                   ProgressReporterOptions options)
    : channel_(channel),
      options_(std::move(options)),
      tail_(options_.metrics_path) {
  absl::MutexLock lock(&mutex_);
  acked_offset_ = std::max<int64_t>(0, options_.start_offset);
}

ProgressReporter::~ProgressReporter() { Stop(); }

void ProgressReporter::Start() {
  absl::MutexLock lock(&mutex_);
  if (started_ || stopping_) return;
  started_ = true;
  thread_ = std::thread(&ProgressReporter::Run, this);
}

void ProgressReporter::Stop() {
  std::thread thread;
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    // Unblocks a Write or Read waiting on the coordinator.
    if (context_ != nullptr) context_->TryCancel();
    thread = std::move(thread_);
  }
  if (thread.joinable()) thread.join();
}

absl::Status ProgressReporter::Flush(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  {
    absl::MutexLock lock(&mutex_);
    if (!started_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "progress reporter of run ", options_.run_id, " was not started"));
    }
  }
  // CompleteEnd() reads no state of the tail, so calling it here races
  // with nothing on the reporter thread.
  absl::StatusOr<int64_t> target = tail_.CompleteEnd();
  if (!target.ok()) return target.status();
  absl::MutexLock lock(&mutex_);
  flush_wanted_ = true;
  auto done = [this, &target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return (first_batch_acked_ && acked_offset_ >= *target) || stopping_ ||
           stop_requested_.load() || !file_error_.ok();
  };
  mutex_.AwaitWithDeadline(absl::Condition(&done), deadline);
  if (first_batch_acked_ && acked_offset_ >= *target) return absl::OkStatus();
  if (stop_requested_.load()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the coordinator stopped run ", options_.run_id,
                     " attempt ", options_.attempt, ": ", stop_reason_));
  }
  if (stopping_) {
    return absl::CancelledError(
        absl::StrCat("progress reporter of run ", options_.run_id, " stopped"));
  }
  if (!file_error_.ok()) return file_error_;
  return absl::DeadlineExceededError(absl::StrCat(
      "metrics of run ", options_.run_id, " acknowledged up to byte ",
      acked_offset_, " of ", *target, " within ", absl::FormatDuration(timeout),
      "; last error: ", last_error_.ToString()));
}

std::string ProgressReporter::stop_reason() const {
  absl::MutexLock lock(&mutex_);
  return stop_reason_;
}

int64_t ProgressReporter::acked_offset() const {
  absl::MutexLock lock(&mutex_);
  return acked_offset_;
}

absl::Time ProgressReporter::lease_expire_time() const {
  absl::MutexLock lock(&mutex_);
  return lease_expire_time_;
}

absl::Status ProgressReporter::last_error() const {
  absl::MutexLock lock(&mutex_);
  return last_error_;
}

ProgressReporterCounters ProgressReporter::counters() const {
  absl::MutexLock lock(&mutex_);
  return counters_;
}

void ProgressReporter::Run() {
  while (true) {
    {
      absl::MutexLock lock(&mutex_);
      if (stopping_) break;
    }
    if (stop_requested_.load()) {
      // Told to stop: report nothing more, wait for Stop().
      (void)CloseStream(/*cancel=*/false);
      Wait(absl::InfiniteDuration(), /*wake_on_flush=*/false);
      continue;
    }
    absl::StatusOr<PendingBatch> pending = BuildBatch();
    if (!pending.ok()) {
      SetError(pending.status());
      {
        absl::MutexLock lock(&mutex_);
        file_error_ = pending.status();
      }
      Wait(options_.batch_interval, /*wake_on_flush=*/false);
      continue;
    }
    bool must_send = pending->has_content;
    {
      absl::MutexLock lock(&mutex_);
      file_error_ = absl::OkStatus();
      must_send = must_send || !first_batch_acked_;
      if (!must_send) {
        // Lines without points (resume, load_report, invalid ones): nothing
        // to commit, so nothing to wait for.
        acked_offset_ = std::max(acked_offset_, pending->end_offset);
      }
    }
    const bool sent = !must_send || SendBatch(*pending);
    if (!sent || pending->retry_checkpoint) {
      Wait(NextBackoff(), /*wake_on_flush=*/false);
      continue;
    }
    if (!pending->more_available) {
      Wait(options_.batch_interval, /*wake_on_flush=*/true);
    }
  }
  (void)CloseStream(/*cancel=*/true);
}

absl::StatusOr<ProgressReporter::PendingBatch> ProgressReporter::BuildBatch() {
  int64_t from = 0;
  {
    absl::MutexLock lock(&mutex_);
    // A Flush() from now on is served by this read or a later one.
    flush_wanted_ = false;
    from = acked_offset_;
  }
  const size_t max_points = std::max<size_t>(1, options_.max_points_per_batch);
  absl::StatusOr<MetricsChunk> chunk = tail_.Read(from, max_points);
  {
    absl::MutexLock lock(&mutex_);
    counters_.invalid_lines = tail_.invalid_lines_total();
  }
  if (!chunk.ok()) return chunk.status();

  PendingBatch pending;
  v1::ProgressBatch& batch = pending.batch;
  batch.set_run_id(options_.run_id);
  batch.set_attempt(options_.attempt);
  batch.set_lease_id(options_.lease_id);
  pending.end_offset = from;
  const int64_t now_ms = absl::ToUnixMillis(options_.clock->Now());
  const std::vector<MetricsRecord>& records = chunk->records;
  size_t consumed = 0;
  for (; consumed < records.size(); ++consumed) {
    const MetricsRecord& record = records[consumed];
    if (std::optional<int64_t> step = StepOf(record.json)) {
      int64_t seen = last_step_.load();
      while (*step > seen && !last_step_.compare_exchange_weak(seen, *step)) {
      }
    }
    if (std::optional<int64_t> checkpoint = CheckpointStepOf(record.json)) {
      if (!options_.checkpoint_hook) {
        pending.end_offset = record.end_offset;
        continue;
      }
      // The points before the checkpoint go first, so that a slow upload
      // does not hold them back.
      if (batch.points_size() > 0) break;
      std::string artifact_id;
      auto uploaded = uploaded_checkpoints_.find(record.end_offset);
      if (uploaded != uploaded_checkpoints_.end()) {
        artifact_id = uploaded->second;
      } else {
        absl::StatusOr<std::string> result =
            options_.checkpoint_hook(*checkpoint);
        if (result.ok()) {
          artifact_id = *result;
          uploaded_checkpoints_[record.end_offset] = artifact_id;
          checkpoint_failures_.erase(record.end_offset);
        } else {
          SetError(absl::Status(
              result.status().code(),
              absl::StrCat("checkpoint of run ", options_.run_id, " at step ",
                           *checkpoint, ": ", result.status().message())));
          // An unreachable coordinator is waited out, as for the stream;
          // other failures (the folder is missing, a file changed during
          // the upload) are retried a few times.
          const absl::StatusCode code = result.status().code();
          const bool transient = code == absl::StatusCode::kUnavailable ||
                                 code == absl::StatusCode::kDeadlineExceeded;
          if (transient || ++checkpoint_failures_[record.end_offset] <
                               options_.checkpoint_max_attempts) {
            pending.retry_checkpoint = true;
            break;
          }
          // Give up on this one; a later checkpoint supersedes it.
          checkpoint_failures_.erase(record.end_offset);
          absl::MutexLock lock(&mutex_);
          ++counters_.checkpoints_skipped;
        }
      }
      pending.end_offset = record.end_offset;
      if (!artifact_id.empty()) {
        batch.set_checkpoint_artifact_id(artifact_id);
        ++consumed;
        break;
      }
      continue;
    }
    if (options_.on_record && record.end_offset > observed_offset_) {
      // Each line once, even when a batch is re-sent after a reconnect.
      observed_offset_ = record.end_offset;
      options_.on_record(record.json);
    }
    for (v1::MetricPoint& point : PointsOf(record.json, now_ms)) {
      *batch.add_points() = std::move(point);
    }
    pending.end_offset = record.end_offset;
    if (static_cast<size_t>(batch.points_size()) >= max_points) {
      ++consumed;
      break;
    }
  }
  if (consumed == records.size() && !pending.retry_checkpoint) {
    // Everything read was used: continue after the lines skipped at the
    // end too. More may follow when the read stopped at its limit.
    pending.end_offset = chunk->next_offset;
    pending.more_available = records.size() >= max_points;
  } else {
    pending.more_available = true;
  }
  pending.has_content =
      batch.points_size() > 0 || !batch.checkpoint_artifact_id().empty();
  return pending;
}

bool ProgressReporter::SendBatch(const PendingBatch& pending) {
  if (stream_ != nullptr &&
      absl::Now() + options_.ack_timeout > stream_deadline_) {
    // Rotate before the deadline can cut an ack short.
    (void)CloseStream(/*cancel=*/false);
  }
  if (stream_ == nullptr) OpenStream();
  if (stream_ == nullptr) return false;  // stopping

  v1::ProgressBatch batch = pending.batch;
  batch.set_sequence(next_sequence_++);
  const int64_t points = batch.points_size();
  {
    absl::MutexLock lock(&mutex_);
    ++counters_.batches_sent;
    counters_.points_sent += points;
  }
  v1::ProgressAck ack;
  if (!stream_->Write(batch) || !stream_->Read(&ack)) {
    const grpc::Status status = CloseStream(/*cancel=*/false);
    had_stream_failure_ = true;
    SetError(absl::UnavailableError(absl::StrCat(
        "ReportProgress of run ", options_.run_id, " (batch ", batch.sequence(),
        "): ", status.error_message(), " (grpc code ",
        static_cast<int>(status.error_code()), ")")));
    return false;
  }
  if (ack.stop()) {
    absl::MutexLock lock(&mutex_);
    stop_reason_ = ack.stop_reason();
    stop_requested_.store(true);
    return true;
  }
  if (ack.acked_sequence() < batch.sequence()) {
    // The coordinator answered without committing: treat it as a failure
    // and re-send on a fresh stream.
    (void)CloseStream(/*cancel=*/true);
    had_stream_failure_ = true;
    SetError(absl::UnavailableError(absl::StrCat(
        "ReportProgress of run ", options_.run_id, ": batch ", batch.sequence(),
        " answered with acked_sequence ", ack.acked_sequence())));
    return false;
  }
  backoff_ = absl::ZeroDuration();
  {
    absl::MutexLock lock(&mutex_);
    acked_offset_ = std::max(acked_offset_, pending.end_offset);
    first_batch_acked_ = true;
    if (ack.has_lease_expire_time()) {
      lease_expire_time_ =
          absl::FromUnixSeconds(ack.lease_expire_time().seconds()) +
          absl::Nanoseconds(ack.lease_expire_time().nanos());
    }
    ++counters_.batches_acked;
    counters_.points_acked += points;
    if (!batch.checkpoint_artifact_id().empty()) {
      ++counters_.checkpoints_reported;
    }
    last_error_ = absl::OkStatus();
  }
  // Checkpoint lines before the acknowledged offset are never read again.
  uploaded_checkpoints_.erase(
      uploaded_checkpoints_.begin(),
      uploaded_checkpoints_.upper_bound(pending.end_offset));
  if (options_.on_points_acked) options_.on_points_acked(points);
  return true;
}

void ProgressReporter::OpenStream() {
  std::unique_ptr<grpc::ClientContext> context =
      channel_->NewContext(options_.stream_lifetime);
  grpc::ClientContext* raw = context.get();
  {
    absl::MutexLock lock(&mutex_);
    if (stopping_) return;
    context_ = std::move(context);
    if (had_stream_failure_) ++counters_.reconnects;
  }
  had_stream_failure_ = false;
  stream_deadline_ = absl::Now() + options_.stream_lifetime;
  stream_ = channel_->stub()->ReportProgress(raw);
}

grpc::Status ProgressReporter::CloseStream(bool cancel) {
  if (stream_ == nullptr) return grpc::Status::OK;
  if (cancel) {
    absl::MutexLock lock(&mutex_);
    if (context_ != nullptr) context_->TryCancel();
  } else {
    // Every ack was read before the next write, so the coordinator ends
    // the stream as soon as it sees the half-close.
    stream_->WritesDone();
    v1::ProgressAck ignored;
    while (stream_->Read(&ignored)) {
    }
  }
  grpc::Status status = stream_->Finish();
  stream_.reset();
  absl::MutexLock lock(&mutex_);
  context_.reset();
  return status;
}

void ProgressReporter::Wait(absl::Duration duration, bool wake_on_flush) {
  absl::MutexLock lock(&mutex_);
  auto wake = [this, wake_on_flush]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return stopping_ || (wake_on_flush && flush_wanted_);
  };
  mutex_.AwaitWithTimeout(absl::Condition(&wake), duration);
}

absl::Duration ProgressReporter::NextBackoff() {
  backoff_ = backoff_ <= absl::ZeroDuration()
                 ? options_.min_backoff
                 : std::min(backoff_ * 2, options_.max_backoff);
  // Jitter in [backoff/2, backoff]: workers that lost the same coordinator
  // do not all come back in the same millisecond.
  thread_local absl::BitGen random;
  return backoff_ * absl::Uniform(random, 0.5, 1.0);
}

void ProgressReporter::SetError(absl::Status status) {
  absl::MutexLock lock(&mutex_);
  last_error_ = std::move(status);
}

}  // namespace lora::worker
