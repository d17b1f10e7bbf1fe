// A Clock whose time moves only when a test says so.
#ifndef LORA_SWEEP_TESTS_FAKES_FAKE_CLOCK_H_
#define LORA_SWEEP_TESTS_FAKES_FAKE_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/clock.h"

namespace lora {

// Starts at `start` (the Unix epoch by default). SleepFor advances the time
// by the duration and returns at once, so code that sleeps runs instantly and
// deterministically. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::UnixEpoch()) : now_(start) {}

  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }

  void SleepFor(absl::Duration duration) override {
    if (duration > absl::ZeroDuration()) Advance(duration);
  }

  // Moves time forward by `duration` (which must not be negative).
  void Advance(absl::Duration duration) {
    absl::MutexLock lock(&mu_);
    now_ += duration;
  }

  // Jumps to `time`; tests may move it backwards to model clock skew.
  void Set(absl::Time time) {
    absl::MutexLock lock(&mu_);
    now_ = time;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_;
};

}  // namespace lora

#endif  // LORA_SWEEP_TESTS_FAKES_FAKE_CLOCK_H_
