// Scheduling decisions: fairness across sweeps and priorities, resource
// matching, lease expiry and worker liveness, on a fake clock.
#include "coordinator/scheduler.h"

#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_clock.h"

namespace lora::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

PendingRun Pending(const std::string& sweep, int64_t index,
                   int64_t priority = 0, int64_t created = 0) {
  PendingRun run;
  run.run_id = sweep + "/" + std::to_string(index);
  run.sweep_id = sweep;
  run.index = index;
  run.sweep_priority = priority;
  run.sweep_create_ms = created;
  return run;
}

// Leases runs one at a time the way the coordinator does: choose, then
// count the chosen run as active in its sweep and remove it from the queue.
std::vector<std::string> Dispatch(std::vector<PendingRun> pending, int count,
                                  std::map<std::string, int64_t> active = {}) {
  WorkerOffer worker;
  std::vector<std::string> order;
  for (int i = 0; i < count; ++i) {
    std::optional<std::string> chosen = ChooseRun(pending, worker, active);
    if (!chosen) break;
    order.push_back(*chosen);
    for (auto it = pending.begin(); it != pending.end(); ++it) {
      if (it->run_id == *chosen) {
        ++active[it->sweep_id];
        pending.erase(it);
        break;
      }
    }
  }
  return order;
}

TEST(SchedulerTest, ABigSweepDoesNotStarveASmallOne) {
  std::vector<PendingRun> pending;
  for (int i = 0; i < 100; ++i) pending.push_back(Pending("big", i, 0, 1));
  for (int i = 0; i < 2; ++i) pending.push_back(Pending("small", i, 0, 2));
  // The older big sweep goes first, then the two alternate while both have
  // runs queued.
  EXPECT_THAT(Dispatch(pending, 5),
              ElementsAre("big/0", "small/0", "big/1", "small/1", "big/2"));
}

TEST(SchedulerTest, ActiveRunsCountTowardsTheShare) {
  std::vector<PendingRun> pending = {Pending("a", 0, 0, 1),
                                     Pending("b", 0, 0, 2)};
  // Sweep a already trains three runs: b is served first despite its age.
  EXPECT_THAT(Dispatch(pending, 2, {{"a", 3}}), ElementsAre("b/0", "a/0"));
}

TEST(SchedulerTest, HigherPriorityIsServedFirst) {
  std::vector<PendingRun> pending = {
      Pending("low", 0, 0, 1), Pending("low", 1, 0, 1),
      Pending("high", 0, 5, 9), Pending("high", 1, 5, 9)};
  EXPECT_THAT(Dispatch(pending, 4),
              ElementsAre("high/0", "high/1", "low/0", "low/1"));
}

TEST(SchedulerTest, ResumedAttemptsGoFirstWithinASweep) {
  std::vector<PendingRun> pending = {Pending("s", 0), Pending("s", 1),
                                     Pending("s", 2)};
  pending[2].attempt = 2;
  EXPECT_THAT(Dispatch(pending, 3), ElementsAre("s/2", "s/0", "s/1"));
}

TEST(SchedulerTest, MatchingOnDeviceGpusAndLabels) {
  PendingRun cuda = Pending("s", 0);
  cuda.device = "cuda";
  cuda.gpus = 2;
  cuda.worker_labels = {{"pool", "a100"}};
  WorkerOffer cpu_worker;
  std::string why;
  EXPECT_FALSE(Matches(cuda, cpu_worker, &why));
  EXPECT_THAT(why, HasSubstr("needs a cuda worker"));
  WorkerOffer gpu_worker;
  gpu_worker.device = "cuda";
  gpu_worker.gpu_count = 1;
  EXPECT_FALSE(Matches(cuda, gpu_worker, &why));
  EXPECT_THAT(why, HasSubstr("needs 2 GPUs"));
  gpu_worker.gpu_count = 8;
  EXPECT_FALSE(Matches(cuda, gpu_worker, &why));
  EXPECT_THAT(why, HasSubstr("needs label pool=a100"));
  gpu_worker.labels = {{"pool", "h100"}};
  EXPECT_FALSE(Matches(cuda, gpu_worker));
  gpu_worker.labels = {{"pool", "a100"}, {"zone", "eu"}};
  EXPECT_TRUE(Matches(cuda, gpu_worker));
  // A CPU run does not take a GPU worker's slot.
  EXPECT_FALSE(Matches(Pending("s", 1), gpu_worker));
  // ChooseRun skips what does not match and takes what does.
  std::vector<PendingRun> pending = {Pending("s", 1), cuda};
  EXPECT_EQ(ChooseRun(pending, gpu_worker, {}), cuda.run_id);
  EXPECT_EQ(ChooseRun(pending, cpu_worker, {}), "s/1");
}

TEST(SchedulerTest, NoFreeSlotOrNothingMatchingLeasesNothing) {
  WorkerOffer busy;
  busy.free_slots = 0;
  EXPECT_EQ(ChooseRun({Pending("s", 0)}, busy, {}), std::nullopt);
  WorkerOffer worker;
  EXPECT_EQ(ChooseRun({}, worker, {}), std::nullopt);
  PendingRun labelled = Pending("s", 0);
  labelled.worker_labels = {{"pool", "x"}};
  EXPECT_EQ(ChooseRun({labelled}, worker, {}), std::nullopt);
}

TEST(SchedulerTest, LeaseTimingNeedsFiveHeartbeatsPerTtl) {
  EXPECT_TRUE(ValidateLeaseTiming({5000, 25000}).ok());
  EXPECT_THAT(ValidateLeaseTiming({5000, 20000}).message(),
              HasSubstr("at least 5 heartbeat intervals"));
  EXPECT_FALSE(ValidateLeaseTiming({0, 1000}).ok());
}

TEST(SchedulerTest, LeasesExpireAtTheirDeadlineOnTheClock) {
  FakeClock clock(absl::FromUnixMillis(1'000'000));
  auto now = [&] { return absl::ToUnixMillis(clock.Now()); };
  const std::vector<HeldRun> held = {{"a", now() + 30000},
                                     {"b", now() + 10000}};
  EXPECT_TRUE(ExpiredLeases(held, now()).empty());
  clock.Advance(absl::Milliseconds(9999));
  EXPECT_TRUE(ExpiredLeases(held, now()).empty());
  clock.Advance(absl::Milliseconds(1));
  EXPECT_THAT(ExpiredLeases(held, now()), ElementsAre("b"));
  clock.Advance(absl::Seconds(20));
  EXPECT_THAT(ExpiredLeases(held, now()), ElementsAre("a", "b"));
}

TEST(SchedulerTest, WorkersAreUpWithinOneTtlOfTheirLastHeartbeat) {
  FakeClock clock(absl::FromUnixMillis(5'000'000));
  const LeaseTiming timing{5000, 25000};
  const int64_t beat = absl::ToUnixMillis(clock.Now());
  clock.Advance(absl::Milliseconds(24999));
  EXPECT_TRUE(WorkerUp(beat, absl::ToUnixMillis(clock.Now()), timing));
  clock.Advance(absl::Milliseconds(1));
  EXPECT_FALSE(WorkerUp(beat, absl::ToUnixMillis(clock.Now()), timing));
  EXPECT_FALSE(Stalled(beat, beat + 59999, 60000));
  EXPECT_TRUE(Stalled(beat, beat + 60000, 60000));
}

}  // namespace
}  // namespace lora::coordinator
