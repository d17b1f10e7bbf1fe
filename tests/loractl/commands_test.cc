// Running loractl's commands in-process (loractl/commands.h): help for
// every command, and the exit status of each kind of outcome — 0 success,
// 2 usage or validation error, 1 server error.
#include "loractl/commands.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lora::loractl {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

struct Outcome {
  int code = -1;
  std::string out;
  std::string err;
};

class CommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR")) + "/" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    env_["HOME"] = dir_;
    // Nothing listens on port 1.
    env_["LORACTL_SERVER"] = "127.0.0.1:1";
  }

  Outcome Run(std::vector<std::string> args) {
    std::ostringstream out;
    std::ostringstream err;
    CliIo io;
    io.out = &out;
    io.err = &err;
    io.env = [this](const std::string& name) -> std::optional<std::string> {
      auto it = env_.find(name);
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
    Outcome outcome;
    outcome.code = RunLoractl(args, BuiltinCommands(), io);
    outcome.out = out.str();
    outcome.err = err.str();
    return outcome;
  }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  std::string dir_;
  std::map<std::string, std::string> env_;
};

TEST_F(CommandsTest, EveryCommandHasHelpWithAnExample) {
  for (const Command& command : BuiltinCommands()) {
    SCOPED_TRACE(command.spec.name);
    std::vector<std::string> args = absl::StrSplit(command.spec.name, ' ');
    args.push_back("--help");
    const Outcome outcome = Run(args);
    EXPECT_EQ(outcome.code, kExitOk);
    EXPECT_THAT(outcome.out, HasSubstr("Usage: loractl " + command.spec.name));
    EXPECT_THAT(outcome.out, HasSubstr("Examples:\n  loractl "));
    EXPECT_THAT(outcome.err, IsEmpty());
  }
  const Outcome program = Run({"--help"});
  EXPECT_EQ(program.code, kExitOk);
  for (const Command& command : BuiltinCommands()) {
    EXPECT_THAT(program.out, HasSubstr(command.spec.name));
  }
}

TEST_F(CommandsTest, UsageErrorsExitTwo) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {},
           {"bogus"},
           {"runs"},
           {"runs", "sw-1", "--bogus"},
           {"sweeps", "--output", "xml"},
           {"results", "sw-1", "--format", "html"},
           {"cancel", "nonsense-id"},
           {"plot", "sw-1"},
           {"artifacts", "get", "run-1"},
           {"runs", "sw-1", "--state", "done"},
           {"sweeps", "--request-timeout", "soon"}}) {
    const Outcome outcome = Run(args);
    EXPECT_EQ(outcome.code, kExitUsage) << absl::StrJoin(args, " ");
    EXPECT_THAT(outcome.err, HasSubstr("error: "));
    EXPECT_THAT(outcome.out, IsEmpty());
  }
  EXPECT_THAT(Run({"runs"}).err, HasSubstr("Run 'loractl runs --help'"));
}

TEST_F(CommandsTest, ServerErrorsExitOne) {
  const Outcome outcome = Run({"sweeps"});
  EXPECT_EQ(outcome.code, kExitError);
  EXPECT_THAT(outcome.err, HasSubstr("ListSweeps: UNAVAILABLE"));
  EXPECT_THAT(outcome.err, HasSubstr("127.0.0.1:1"));
  EXPECT_EQ(Run({"show", "run-1"}).code, kExitError);
  EXPECT_EQ(Run({"watch", "sw-1"}).code, kExitError);
}

TEST_F(CommandsTest, ABadSweepFileExitsTwoNamingFileLineAndKey) {
  const std::string path =
      Write("bad.yaml",
            "name: a\nmodel: roberta-tiny\ntask: polarity\nparameters:\n"
            "  lora.rank: [4, 0]\n");
  for (bool dry_run : {true, false}) {
    std::vector<std::string> args = {"submit", path};
    if (dry_run) args.push_back("--dry-run");
    const Outcome outcome = Run(args);
    EXPECT_EQ(outcome.code, kExitUsage);
    // Validated before any connection: no UNAVAILABLE from port 1.
    EXPECT_THAT(outcome.err,
                HasSubstr(path + ":5: lora.rank: expected an integer >= 1, "
                                 "got 0"));
  }
  const Outcome missing = Run({"submit", dir_ + "/missing.yaml"});
  EXPECT_EQ(missing.code, kExitUsage);
  EXPECT_THAT(missing.err, HasSubstr("missing.yaml"));
}

TEST_F(CommandsTest, DryRunPrintsRunsWithParameterCountsWithoutAServer) {
  const std::string path =
      Write("sweep.yaml",
            "name: seed\nmodel: roberta-base\ntask: polarity\nparameters:\n"
            "  lora.rank: [1, 2, 4, 8]\nfixed:\n  lora.target_modules: [query, "
            "value]\n  lora.alpha: 16\n  max_seq_len: 64\n");
  const Outcome outcome = Run({"submit", path, "--dry-run"});
  ASSERT_EQ(outcome.code, kExitOk) << outcome.err;
  EXPECT_THAT(outcome.out, HasSubstr("is valid (dry run"));
  EXPECT_THAT(outcome.out, HasSubstr("4 runs"));
  // The seed's counts: LoRA 36,864 r; trainable with the linear head.
  EXPECT_THAT(outcome.out, HasSubstr("38,402"));
  EXPECT_THAT(outcome.out, HasSubstr("36,864"));
  EXPECT_THAT(outcome.out, HasSubstr("148,994   147,456"));
  EXPECT_THAT(outcome.out, HasSubstr("296,450"));

  const Outcome json = Run({"submit", path, "--dry-run", "--output", "json"});
  ASSERT_EQ(json.code, kExitOk) << json.err;
  const nlohmann::json parsed = nlohmann::json::parse(json.out);
  EXPECT_TRUE(parsed["dry_run"].get<bool>());
  ASSERT_EQ(parsed["runs"].size(), 4u);
  EXPECT_EQ(parsed["runs"][2]["parameter_counts"]["lora"], 147456);
  EXPECT_EQ(parsed["runs"][2]["parameter_counts"]["trainable"], 148994);
  EXPECT_EQ(parsed["runs"][2]["parameter_counts"]["total"], 124645632 + 148994);
  EXPECT_EQ(parsed["runs"][2]["parameters"]["lora.rank"], 4);
}

TEST_F(CommandsTest, AMalformedConfigFileIsAUsageError) {
  std::filesystem::create_directories(dir_ + "/.config/loractl");
  Write(".config/loractl/config.yaml", "sever: x:1\n");
  const Outcome outcome = Run({"sweeps"});
  EXPECT_EQ(outcome.code, kExitUsage);
  EXPECT_THAT(outcome.err, HasSubstr("config.yaml:1: sever: unknown key"));
}

TEST(ExitCodeTest, Mapping) {
  EXPECT_EQ(ExitCodeOf(absl::OkStatus()), kExitOk);
  EXPECT_EQ(ExitCodeOf(absl::InvalidArgumentError("x")), kExitUsage);
  EXPECT_EQ(ExitCodeOf(absl::NotFoundError("x")), kExitError);
  EXPECT_EQ(ExitCodeOf(absl::UnavailableError("x")), kExitError);
  EXPECT_EQ(
      ExitCodeOf(WithExitCode(absl::ResourceExhaustedError("x"), kExitUsage)),
      kExitUsage);
  EXPECT_EQ(
      ExitCodeOf(WithExitCode(absl::InvalidArgumentError("x"), kExitError)),
      kExitError);
}

}  // namespace
}  // namespace lora::loractl
