// Reading a sweep's WatchSweep stream the way loractl needs it:
//
// - FollowSweep: every event in order until the sweep ends, across
//   breaks. When the stream fails with UNAVAILABLE (lorad restarting or
//   unreachable), CANCELLED (a stopping lorad cancels its calls) or
//   RESOURCE_EXHAUSTED (this watcher fell behind), it reconnects after a
//   backoff from the last sequence it delivered, so nothing is missed or
//   delivered twice; it gives up when no stream has delivered anything for
//   `reconnect_timeout`.
// - ReplayEvents: the events the store holds now, without following: the
//   whole stream for a sweep that has ended, and for one still running the
//   backlog up to the first quiet pause (the backlog is sent at full speed;
//   later events arrive only as workers report), the first event stamped
//   more than 2 s after the call began (clock skew allowed for), or one
//   minute, whichever comes first.
//
// Thread-compatible: each call runs on the calling thread (ReplayEvents
// uses one helper thread to cut the stream).
#ifndef LORA_SWEEP_LORACTL_SWEEP_WATCH_H_
#define LORA_SWEEP_LORACTL_SWEEP_WATCH_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "lora/v1/sweep_service.pb.h"
#include "loractl/client.h"

namespace lora::loractl {

struct FollowOptions {
  // Backoff waits and the give-up deadline use this clock (not owned).
  Clock* clock = &RealClock::Default();
  int64_t after_sequence = 0;
  bool include_metrics = true;
  absl::Duration reconnect_timeout = absl::Minutes(2);
  absl::Duration first_backoff = absl::Milliseconds(250);
  absl::Duration max_backoff = absl::Seconds(2);
};

// Called before each reconnect with the error that broke the stream, the
// last sequence delivered, and the wait before reconnecting.
using RetryCallback = std::function<void(
    const absl::Status& error, int64_t last_sequence, absl::Duration delay)>;

// Delivers events to `on_event` until lorad ends the stream (the sweep is
// terminal and every event was delivered): OK. Errors: a status that is not
// retried (NOT_FOUND for an unknown sweep, UNAUTHENTICATED, ...), or the
// last error once `reconnect_timeout` passed without progress.
absl::Status FollowSweep(
    LoradClient* client, const std::string& sweep_id,
    const FollowOptions& options,
    const std::function<void(const v1::SweepEvent&)>& on_event,
    const RetryCallback& on_retry);

// The events of a sweep the store holds now (see above); `quiet` is the
// pause that ends the backlog of a running sweep.
absl::StatusOr<std::vector<v1::SweepEvent>> ReplayEvents(
    LoradClient* client, const std::string& sweep_id, bool include_metrics,
    absl::Duration quiet = absl::Seconds(1));

}  // namespace lora::loractl

#endif  // LORA_SWEEP_LORACTL_SWEEP_WATCH_H_
