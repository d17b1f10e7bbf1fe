// Time as an injected dependency. Components that decide by time (leases,
// heartbeats, retries, long polls) take a Clock& so tests can drive a fake
// clock (tests/fakes/fake_clock.h) instead of sleeping.
#ifndef LORA_SWEEP_BASE_CLOCK_H_
#define LORA_SWEEP_BASE_CLOCK_H_

#include "absl/time/time.h"

namespace lora {

// Thread-safe: every implementation may be called from any thread.
class Clock {
 public:
  virtual ~Clock() = default;

  // The current wall-clock time.
  virtual absl::Time Now() const = 0;

  // Blocks the calling thread for `duration` of this clock's time. A
  // non-positive duration returns at once.
  virtual void SleepFor(absl::Duration duration) = 0;
};

// The system clock. Stateless; one instance may be shared by everything.
class RealClock final : public Clock {
 public:
  absl::Time Now() const override;
  void SleepFor(absl::Duration duration) override;

  // A process-wide instance for main() functions to inject. Never destroyed.
  static RealClock& Default();
};

}  // namespace lora

#endif  // LORA_SWEEP_BASE_CLOCK_H_
