#include "base/clock.h"

#include "absl/time/clock.h"

namespace lora {

absl::Time RealClock::Now() const { return absl::Now(); }

void RealClock::SleepFor(absl::Duration duration) {
  if (duration > absl::ZeroDuration()) absl::SleepFor(duration);
}

RealClock& RealClock::Default() {
  static RealClock* const clock = new RealClock();
  return *clock;
}

}  // namespace lora
