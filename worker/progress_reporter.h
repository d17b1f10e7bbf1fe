// Streams one run attempt's metrics from the training child's metrics.jsonl
// to the coordinator (WorkerService.ReportProgress), durably: a line counts
// as reported only once the coordinator acknowledged the batch that carried
// its points, and a broken stream is reopened and resumed from there.
//
// The child is never slowed down: it appends to its file, and a reporter
// thread of this class reads the file (MetricsFileTail) and does all the
// network I/O.
//
// Protocol, as the reporter uses it:
// - One batch in flight at a time. Batch sequence numbers start at 1 and go
//   up by one per batch written, across reconnects, for the life of the
//   reporter (one reporter per attempt).
// - The first batch is sent as soon as Start() runs, empty if the file has
//   nothing yet: it moves the run from LEASED to RUNNING. After that a batch
//   is sent only when there is something to report; lines that carry no
//   point (resume, load_report, invalid lines) are passed over without one.
// - acked_offset() advances to the end of a batch's lines only when an ack
//   with acked_sequence >= the batch's sequence arrives. On a stream error,
//   a missing ack or a disconnect, the reporter reopens the stream after an
//   exponential backoff (min_backoff doubling up to max_backoff, with
//   jitter) and re-sends from acked_offset() with new sequence numbers. The
//   coordinator stores points idempotently by (run, attempt, step, name), so
//   a re-sent point is stored once.
// - A {"type":"checkpoint","step":N} line ends a batch. Before that batch
//   is sent, the checkpoint hook uploads <output-dir>/checkpoint/ and
//   returns its artifact id, which the batch carries: the coordinator learns
//   of a checkpoint only after it was uploaded, together with every point
//   written before it. An uploaded id is remembered, so a batch re-sent
//   after a reconnect does not upload again. A failing hook is retried
//   after the backoff (the points before the checkpoint line still go
//   out): without limit while it fails with Unavailable or
//   DeadlineExceeded (the coordinator is unreachable; nothing could be sent
//   anyway), otherwise up to checkpoint_max_attempts times, after which the
//   checkpoint is passed over without an id (a later one supersedes it).
// - An ack with `stop` (the run was cancelled or the lease lost) sets
//   stop_requested() and stop_reason(); the reporter then sends nothing
//   more. The caller kills the child.
//
// Thread safety: every public method may be called from any thread, except
// that the checkpoint hook and on_points_acked, which run on the reporter
// thread, must not call Stop() or destroy the reporter.
#ifndef LORA_SWEEP_WORKER_PROGRESS_REPORTER_H_
#define LORA_SWEEP_WORKER_PROGRESS_REPORTER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "lora/v1/worker_service.grpc.pb.h"
#include "worker/coordinator_channel.h"
#include "worker/metrics_file.h"

namespace lora::worker {

// Uploads the checkpoint saved at `step` and returns its artifact id
// ("sha256:..."). An empty id passes the checkpoint line over without
// reporting a checkpoint (e.g. the folder already holds a later one).
// Called on the reporter thread; may block (the reporter sends nothing
// meanwhile, and Stop() waits for it).
using CheckpointHook = std::function<absl::StatusOr<std::string>(int64_t step)>;

struct ProgressReporterOptions {
  // The attempt being reported, as AcquireJob returned it.
  std::string run_id;
  int32_t attempt = 0;
  std::string lease_id;
  // The child's <output-dir>/metrics.jsonl (it may not exist yet).
  std::string metrics_path;
  // Lines before this byte offset are not reported: e.g. what an earlier
  // attempt left in a reused output folder. 0 or the end of a line.
  int64_t start_offset = 0;

  // A batch carries at most about this many points (a record's points are
  // never split across batches).
  size_t max_points_per_batch = 500;
  // How often the file is polled for new lines when the last batch left
  // nothing behind. Flush() and Stop() interrupt the wait.
  absl::Duration batch_interval = absl::Milliseconds(500);
  // Reconnect backoff after a failed stream or batch.
  absl::Duration min_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
  // A stream is closed and a new one opened when less than `ack_timeout`
  // of its lifetime is left, so waiting for an ack never outlasts the
  // stream's deadline (about stream_lifetime at most, when the coordinator
  // hangs). Must exceed ack_timeout.
  absl::Duration stream_lifetime = absl::Seconds(120);
  absl::Duration ack_timeout = absl::Seconds(30);

  // Null: checkpoint lines are passed over and no checkpoint is reported.
  CheckpointHook checkpoint_hook;
  // Calls of the hook for one checkpoint line that fail with another code
  // than Unavailable or DeadlineExceeded before it is passed over.
  int checkpoint_max_attempts = 5;

  // Called after each acknowledged batch with the number of points it
  // carried. Optional.
  std::function<void(int64_t points)> on_points_acked;

  // Called once with every metrics record read from the file (step, epoch,
  // ... lines), on the reporter thread, before it is sent: the worker's
  // own metrics (step time, tokens/s) come from here. Optional.
  std::function<void(const nlohmann::json& record)> on_record;

  // Timestamps of the points. Not owned; must outlive the reporter.
  Clock* clock = &RealClock::Default();
};

// Monotonic counters, for logs and tests.
struct ProgressReporterCounters {
  int64_t batches_sent = 0;  // written to a stream (re-sends included)
  int64_t batches_acked = 0;
  int64_t points_sent = 0;           // in written batches (re-sends included)
  int64_t points_acked = 0;          // in acknowledged batches
  int64_t reconnects = 0;            // streams opened after a failed one
  int64_t checkpoints_reported = 0;  // acked batches with an artifact id
  int64_t checkpoints_skipped = 0;   // the hook failed every attempt
  int64_t invalid_lines = 0;         // skipped lines of the metrics file
};

class ProgressReporter {
 public:
  // `channel` is not owned and must outlive the reporter. Nothing happens
  // before Start().
  ProgressReporter(CoordinatorChannel* channel,
                   ProgressReporterOptions options);
  // Stop()s.
  ~ProgressReporter();

  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  // Starts the reporter thread. Calling it again does nothing.
  void Start();

  // Waits until every complete line now in the metrics file is
  // acknowledged (call it after the child exited, before FinishRun).
  // Returns OK then; FailedPrecondition if Start() was not called, or once
  // the coordinator asked to stop (the message names the reason);
  // Cancelled after Stop(); DeadlineExceeded after `timeout`, with the last
  // stream error in the message; an error of the file itself (the file
  // shrank, cannot be read).
  absl::Status Flush(absl::Duration timeout);

  // Ends the reporter thread: interrupts a pending stream call, waits for a
  // running checkpoint hook, and returns. Lines not yet acknowledged are
  // not sent (Flush first for that). Idempotent.
  void Stop();

  // Set once an ack carried `stop`; the reason is "cancelled" or
  // "lease_lost" (as the coordinator sent it).
  bool stop_requested() const { return stop_requested_.load(); }
  std::string stop_reason() const;

  // The offset in the metrics file up to which every line is acknowledged
  // (or carried no point); start_offset before the first ack.
  int64_t acked_offset() const;
  // The highest "step" of any line read from the file so far (the child's
  // progress, for heartbeats); 0 before the first.
  int64_t last_step() const { return last_step_.load(); }
  // The lease expiry of the latest ack; absl::InfinitePast() before one.
  absl::Time lease_expire_time() const;
  // The latest error of the stream, the file or the checkpoint hook (OK
  // when none happened since the last acknowledged batch).
  absl::Status last_error() const;
  ProgressReporterCounters counters() const;

 private:
  // What BuildBatch() assembled from the file.
  struct PendingBatch {
    v1::ProgressBatch batch;      // without sequence
    int64_t end_offset = 0;       // acked_offset() once it is acknowledged
    bool has_content = false;     // points or a checkpoint id
    bool more_available = false;  // the file holds more after end_offset
    // The checkpoint hook failed; try again after a backoff.
    bool retry_checkpoint = false;
  };

  void Run();
  // Reads the file from acked_offset() and assembles the next batch; calls
  // the checkpoint hook when a checkpoint line ends it.
  absl::StatusOr<PendingBatch> BuildBatch();
  // Writes one batch and reads its ack on the open stream (opening one
  // first if needed). False on any stream failure (the stream is closed).
  bool SendBatch(const PendingBatch& pending);
  void OpenStream();
  // Half-closes and finishes the stream; returns its final status.
  grpc::Status CloseStream(bool cancel);
  // Sleeps `duration` unless Stop() or Flush() wakes the thread first.
  void Wait(absl::Duration duration, bool wake_on_flush);
  absl::Duration NextBackoff();
  void SetError(absl::Status status);

  CoordinatorChannel* const channel_;
  const ProgressReporterOptions options_;
  MetricsFileTail tail_;  // reporter thread only

  // Reporter thread only.
  std::unique_ptr<grpc::ClientReaderWriter<v1::ProgressBatch, v1::ProgressAck>>
      stream_;
  absl::Time stream_deadline_;
  int64_t next_sequence_ = 1;
  absl::Duration backoff_ = absl::ZeroDuration();
  bool had_stream_failure_ = false;
  // End offset of the last record passed to on_record.
  int64_t observed_offset_ = 0;
  // Checkpoint lines already handled, by end offset: the uploaded artifact
  // id, and how often the hook failed for lines not yet uploaded.
  std::map<int64_t, std::string> uploaded_checkpoints_;
  std::map<int64_t, int> checkpoint_failures_;

  std::atomic<bool> stop_requested_{false};
  std::atomic<int64_t> last_step_{0};

  mutable absl::Mutex mutex_;
  std::unique_ptr<grpc::ClientContext> context_ ABSL_GUARDED_BY(mutex_);
  std::thread thread_ ABSL_GUARDED_BY(mutex_);
  bool started_ ABSL_GUARDED_BY(mutex_) = false;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  // Raised by Flush() to cut the poll wait short.
  bool flush_wanted_ ABSL_GUARDED_BY(mutex_) = false;
  int64_t acked_offset_ ABSL_GUARDED_BY(mutex_) = 0;
  bool first_batch_acked_ ABSL_GUARDED_BY(mutex_) = false;
  std::string stop_reason_ ABSL_GUARDED_BY(mutex_);
  absl::Time lease_expire_time_ ABSL_GUARDED_BY(mutex_) = absl::InfinitePast();
  absl::Status last_error_ ABSL_GUARDED_BY(mutex_);
  // An error of the file that Flush() cannot wait out.
  absl::Status file_error_ ABSL_GUARDED_BY(mutex_);
  ProgressReporterCounters counters_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace lora::worker

#endif  // LORA_SWEEP_WORKER_PROGRESS_REPORTER_H_
