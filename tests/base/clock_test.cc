#include "base/clock.h"

#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_clock.h"

namespace lora {
namespace {

TEST(RealClockTest, TracksSystemTime) {
  absl::Time before = absl::Now();
  absl::Time now = RealClock::Default().Now();
  absl::Time after = absl::Now();
  EXPECT_LE(before, now);
  EXPECT_LE(now, after);
}

TEST(RealClockTest, SleepForWaitsAtLeastTheDuration) {
  RealClock clock;
  absl::Time start = clock.Now();
  clock.SleepFor(absl::Milliseconds(20));
  EXPECT_GE(clock.Now() - start, absl::Milliseconds(20));
}

TEST(RealClockTest, NonPositiveSleepReturns) {
  RealClock clock;
  clock.SleepFor(absl::ZeroDuration());
  clock.SleepFor(absl::Seconds(-5));  // Must not block or crash.
  SUCCEED();
}

TEST(FakeClockTest, StartsAtGivenTimeAndMovesOnlyWhenAdvanced) {
  absl::Time start = absl::FromUnixSeconds(1'700'000'000);
  FakeClock clock(start);
  EXPECT_EQ(clock.Now(), start);
  EXPECT_EQ(clock.Now(), start);
  clock.Advance(absl::Seconds(30));
  EXPECT_EQ(clock.Now(), start + absl::Seconds(30));
}

TEST(FakeClockTest, SleepAdvancesInsteadOfBlocking) {
  FakeClock clock;
  clock.SleepFor(absl::Hours(24));
  EXPECT_EQ(clock.Now(), absl::UnixEpoch() + absl::Hours(24));
  clock.SleepFor(absl::Seconds(-1));
  EXPECT_EQ(clock.Now(), absl::UnixEpoch() + absl::Hours(24));
}

TEST(FakeClockTest, SetCanMoveBackwards) {
  FakeClock clock(absl::FromUnixSeconds(100));
  clock.Set(absl::FromUnixSeconds(50));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(50));
}

TEST(FakeClockTest, ConcurrentAdvancesAreAllApplied) {
  FakeClock clock;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&clock] {
      for (int i = 0; i < 1000; ++i) clock.Advance(absl::Milliseconds(1));
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(clock.Now(), absl::UnixEpoch() + absl::Seconds(4));
}

}  // namespace
}  // namespace lora
