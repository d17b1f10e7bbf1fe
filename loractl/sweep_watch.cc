#include "loractl/sweep_watch.h"

#include <algorithm>
#include <memory>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "loractl/display.h"

namespace lora::loractl {
namespace {

constexpr absl::Duration kClockSkew = absl::Seconds(2);

bool Retryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE ||
         code == grpc::StatusCode::CANCELLED ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED;
}

}  // namespace

absl::Status FollowSweep(
    LoradClient* client, const std::string& sweep_id,
    const FollowOptions& options,
    const std::function<void(const v1::SweepEvent&)>& on_event,
    const RetryCallback& on_retry) {
  int64_t last = options.after_sequence;
  absl::Duration backoff = options.first_backoff;
  absl::Time progress = options.clock->Now();  // last time a stream delivered
  while (true) {
    // No deadline: a sweep may run for days.
    std::unique_ptr<grpc::ClientContext> context = client->NewContext();
    v1::WatchSweepRequest request;
    request.set_sweep_id(sweep_id);
    request.set_after_sequence(last);
    request.set_include_metrics(options.include_metrics);
    std::unique_ptr<grpc::ClientReader<v1::SweepEvent>> reader =
        client->stub()->WatchSweep(context.get(), request);
    v1::SweepEvent event;
    while (reader->Read(&event)) {
      // A reconnect never replays what was delivered; skip defensively.
      if (event.sequence() <= last) continue;
      last = event.sequence();
      progress = options.clock->Now();
      backoff = options.first_backoff;
      on_event(event);
    }
    grpc::Status status = reader->Finish();
    if (status.ok()) return absl::OkStatus();
    absl::Status error = client->Explain("WatchSweep", status);
    if (!Retryable(status.error_code()) ||
        options.clock->Now() - progress > options.reconnect_timeout) {
      return error;
    }
    if (on_retry) on_retry(error, last, backoff);
    options.clock->SleepFor(backoff);
    backoff = std::min(options.max_backoff, backoff * 2);
  }
}

absl::StatusOr<std::vector<v1::SweepEvent>> ReplayEvents(
    LoradClient* client, const std::string& sweep_id, bool include_metrics,
    absl::Duration quiet) {
  absl::StatusOr<v1::Sweep> sweep = client->GetSweep(sweep_id);
  if (!sweep.ok()) return sweep.status();
  const bool ended = IsTerminal(sweep->state());

  std::unique_ptr<grpc::ClientContext> context =
      client->NewContext(ended ? absl::InfiniteDuration() : absl::Minutes(1));
  v1::WatchSweepRequest request;
  request.set_sweep_id(sweep_id);
  request.set_include_metrics(include_metrics);
  std::unique_ptr<grpc::ClientReader<v1::SweepEvent>> reader =
      client->stub()->WatchSweep(context.get(), request);

  // For a running sweep, a helper cancels the call after `quiet` without an
  // event (or once an event newer than the call arrives).
  absl::Mutex mutex;
  absl::Time last_event = absl::Now();
  bool done = false;
  std::thread cutter;
  if (!ended) {
    cutter = std::thread([&] {
      absl::MutexLock lock(&mutex);
      while (!done) {
        const absl::Time deadline = last_event + quiet;
        if (absl::Now() >= deadline) {
          context->TryCancel();
          return;
        }
        mutex.AwaitWithDeadline(absl::Condition(&done), deadline);
      }
    });
  }
  const absl::Time started = absl::Now();
  std::vector<v1::SweepEvent> events;
  v1::SweepEvent event;
  while (reader->Read(&event)) {
    // Stamped by lorad well after this call began (allowing for clock skew
    // between the machines): a live event, not the backlog.
    const bool live = !ended && ToAbslTime(event.time()) > started + kClockSkew;
    {
      absl::MutexLock lock(&mutex);
      last_event = absl::Now();
    }
    if (live) break;  // written after this call began: not the backlog
    events.push_back(event);
  }
  {
    absl::MutexLock lock(&mutex);
    done = true;
  }
  if (cutter.joinable()) cutter.join();
  // A running sweep's stream never ends by itself.
  if (!ended) context->TryCancel();
  grpc::Status status = reader->Finish();
  const bool cut_by_us =
      !ended && (status.error_code() == grpc::StatusCode::CANCELLED ||
                 status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  if (!status.ok() && !cut_by_us) {
    return client->Explain("WatchSweep", status);
  }
  return events;
}

}  // namespace lora::loractl
