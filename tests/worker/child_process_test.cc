// Child processes as the worker runs training jobs: exit statuses, signals,
// process groups, terminate with a grace period, output files.
#include "worker/child_process.h"

#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lora::worker {
namespace {

using ::testing::HasSubstr;

std::string Tmp(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

std::unique_ptr<ChildProcess> Shell(const std::string& script,
                                    const std::string& err = "") {
  ChildSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.stderr_path = err;
  spec.stdout_path = err.empty() ? "" : err + ".out";
  spec.env = {{"LORA_TEST_VALUE", "forty-two"}};
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Start(spec);
  EXPECT_TRUE(child.ok()) << child.status();
  return std::move(*child);
}

TEST(ChildProcessTest, ReportsExitCodesAndOutput) {
  const std::string err = Tmp("exit.err");
  auto child = Shell("echo \"$LORA_TEST_VALUE\"; echo oops >&2; exit 3", err);
  std::optional<ExitStatus> status = child->Wait(absl::Seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->exit_code, 3);
  EXPECT_FALSE(status->success());
  EXPECT_EQ(status->Describe(), "exit status 3");
  EXPECT_EQ(FileTail(err, 100), "oops\n");
  EXPECT_EQ(FileTail(err + ".out", 100), "forty-two\n");
}

TEST(ChildProcessTest, ReportsSignals) {
  auto child = Shell("kill -9 $$");
  std::optional<ExitStatus> status = child->Wait(absl::Seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->signal, SIGKILL);
  EXPECT_THAT(status->Describe(), HasSubstr("killed by signal 9"));
}

TEST(ChildProcessTest, TerminateEscalatesToSigkillAfterTheGrace) {
  // Ignores SIGTERM (once the trap is set: it says so in a file), and has a
  // grandchild in its group.
  const std::string ready = Tmp("trap.ready");
  auto child = Shell("trap '' TERM; sleep 100 & touch " + ready +
                     "; while true; do sleep 1; done");
  for (int i = 0; i < 1000 && !std::ifstream(ready); ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(std::ifstream(ready).good());
  EXPECT_FALSE(child->Poll().has_value());
  ExitStatus status = child->Terminate(absl::Milliseconds(300));
  EXPECT_EQ(status.signal, SIGKILL);
}

TEST(ChildProcessTest, TerminateEndsAWellBehavedChildWithSigterm) {
  auto child = Shell("sleep 100");
  ExitStatus status = child->Terminate(absl::Seconds(10));
  EXPECT_EQ(status.signal, SIGTERM);
}

TEST(ChildProcessTest, AMissingProgramExits127WithTheReason) {
  ChildSpec spec;
  spec.argv = {"/no/such/program"};
  spec.stderr_path = Tmp("missing.err");
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Start(spec);
  ASSERT_TRUE(child.ok());
  std::optional<ExitStatus> status = (*child)->Wait(absl::Seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->exit_code, 127);
  EXPECT_THAT(FileTail(spec.stderr_path, 200), HasSubstr("exec failed"));
  EXPECT_FALSE(ChildProcess::Start(ChildSpec{}).ok());
}

TEST(ChildProcessTest, FileTailStartsAtALine) {
  const std::string path = Tmp("tail.txt");
  std::ofstream(path) << "first line\nsecond line\nthird\n";
  EXPECT_EQ(FileTail(path, 10), "third\n");
  EXPECT_EQ(FileTail(path, 1000), "first line\nsecond line\nthird\n");
  EXPECT_EQ(FileTail(Tmp("absent"), 10), "");
}

}  // namespace
}  // namespace lora::worker
