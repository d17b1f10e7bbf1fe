#include "worker/cpu_budget.h"

#include "gtest/gtest.h"

namespace lora::worker {
namespace {

TEST(CpuBudgetTest, JobsThatFitTheCoresAreNotOversubscribed) {
  EXPECT_FALSE(Oversubscribed(1, 2, 2));
  EXPECT_FALSE(Oversubscribed(2, 1, 2));
  EXPECT_FALSE(Oversubscribed(4, 4, 16));
  EXPECT_EQ(ChildOmpWaitPolicy(1, 2, 2), "");
}

TEST(CpuBudgetTest, MoreThreadsThanCoresAreOversubscribed) {
  EXPECT_TRUE(Oversubscribed(2, 2, 2));
  EXPECT_TRUE(Oversubscribed(1, 3, 2));
  EXPECT_TRUE(Oversubscribed(5, 4, 16));
  EXPECT_EQ(ChildOmpWaitPolicy(2, 2, 2), "PASSIVE");
}

TEST(CpuBudgetTest, UnknownOrMeaninglessCountsAreNeverOversubscribed) {
  EXPECT_FALSE(Oversubscribed(8, 8, 0));  // hardware_concurrency() unknown
  EXPECT_FALSE(Oversubscribed(0, 8, 2));
  EXPECT_FALSE(Oversubscribed(8, 0, 2));
  EXPECT_FALSE(Oversubscribed(-1, -4, 2));
  EXPECT_EQ(ChildOmpWaitPolicy(8, 8, 0), "");
}

}  // namespace
}  // namespace lora::worker
