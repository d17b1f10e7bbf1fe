#include "base/status_macros.h"

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace lora {
namespace {

absl::Status FailIf(bool fail, int* calls) {
  ++*calls;
  return fail ? absl::InvalidArgumentError("lora.rank must be >= 1, got 0")
              : absl::OkStatus();
}

absl::Status TwoSteps(bool fail_first, bool fail_second, int* calls) {
  LORA_RETURN_IF_ERROR(FailIf(fail_first, calls));
  LORA_RETURN_IF_ERROR(FailIf(fail_second, calls));
  return absl::OkStatus();
}

TEST(ReturnIfErrorTest, ReturnsFirstErrorAndSkipsTheRest) {
  int calls = 0;
  absl::Status status = TwoSteps(true, false, &calls);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "lora.rank must be >= 1, got 0");
  EXPECT_EQ(calls, 1);
}

TEST(ReturnIfErrorTest, RunsEveryStepWhenAllSucceed) {
  int calls = 0;
  EXPECT_TRUE(TwoSteps(false, false, &calls).ok());
  EXPECT_EQ(calls, 2);
}

absl::StatusOr<std::unique_ptr<int>> MakeInt(int value) {
  if (value < 0) return absl::OutOfRangeError("negative");
  return std::make_unique<int>(value);
}

absl::StatusOr<int> Doubled(int value) {
  LORA_ASSIGN_OR_RETURN(std::unique_ptr<int> owned, MakeInt(value));
  LORA_ASSIGN_OR_RETURN(auto again, MakeInt(*owned));  // Two uses in a scope.
  return *owned + *again;
}

TEST(AssignOrReturnTest, MovesValueOutOnSuccess) {
  absl::StatusOr<int> result = Doubled(21);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, 42);
}

TEST(AssignOrReturnTest, PropagatesErrorUnchanged) {
  absl::StatusOr<int> result = Doubled(-1);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(result.status().message(), "negative");
}

}  // namespace
}  // namespace lora
