// loractl's command-line grammar: flags anywhere after the command, global
// flags anywhere, values joined or separate, choices, help, suggestions.
#include "loractl/cli_args.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lora::loractl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<CommandSpec> Specs() {
  CommandSpec runs;
  runs.name = "runs";
  runs.args = "SWEEP";
  runs.min_args = runs.max_args = 1;
  runs.summary = "List a sweep's runs";
  runs.flags = {{"state", 0, true, "STATE", "only these", {}, true},
                {"all", 'a', false, "", "everything"}};
  runs.examples = {"loractl runs sw-1 --state failed"};
  CommandSpec plot;
  plot.name = "plot";
  plot.args = "SWEEP";
  plot.min_args = plot.max_args = 1;
  plot.flags = {{"output-file", 'o', true, "FILE", "where"}};
  CommandSpec get;
  get.name = "artifacts get";
  get.args = "RUN";
  get.min_args = get.max_args = 1;
  get.summary = "Download";
  CommandSpec list;
  list.name = "artifacts list";
  list.summary = "List";
  return {runs, plot, get, list};
}

absl::StatusOr<ParsedArgs> Parse(std::vector<std::string> args) {
  return ParseArgs(args, Specs());
}

std::string ErrorOf(std::vector<std::string> args) {
  absl::StatusOr<ParsedArgs> parsed = Parse(args);
  EXPECT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  return parsed.ok() ? "" : std::string(parsed.status().message());
}

TEST(CliArgsTest, FlagsBeforeAndAfterArgumentsInEveryForm) {
  absl::StatusOr<ParsedArgs> parsed =
      Parse({"--server", "h:1", "runs", "--state=failed", "sw-1", "--state",
             "pending", "-a", "--output=json"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->command, "runs");
  EXPECT_THAT(parsed->positional, ElementsAre("sw-1"));
  EXPECT_EQ(*parsed->Get("server"), "h:1");
  EXPECT_THAT(parsed->GetAll("state"), ElementsAre("failed", "pending"));
  EXPECT_TRUE(parsed->Has("all"));
  EXPECT_EQ(*parsed->Get("output"), "json");
  EXPECT_FALSE(parsed->help);
}

TEST(CliArgsTest, ACommandsShortFlagWinsOverTheGlobalOne) {
  absl::StatusOr<ParsedArgs> plot = Parse({"plot", "sw-1", "-o", "a.svg"});
  ASSERT_TRUE(plot.ok()) << plot.status();
  EXPECT_EQ(*plot->Get("output-file"), "a.svg");
  EXPECT_FALSE(plot->Has("output"));
  absl::StatusOr<ParsedArgs> runs = Parse({"runs", "sw-1", "-ojson"});
  ASSERT_TRUE(runs.ok()) << runs.status();
  EXPECT_EQ(*runs->Get("output"), "json");
}

TEST(CliArgsTest, TwoWordCommandsAndDoubleDash) {
  absl::StatusOr<ParsedArgs> parsed =
      Parse({"artifacts", "get", "--", "-weird-name"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->command, "artifacts get");
  EXPECT_THAT(parsed->positional, ElementsAre("-weird-name"));
}

TEST(CliArgsTest, HelpInEveryForm) {
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"--help"},
                                             {"-h"},
                                             {"help"},
                                             {"runs", "--help"},
                                             {"help", "runs"},
                                             {"runs", "-h"},
                                             {"artifacts", "--help"}}) {
    absl::StatusOr<ParsedArgs> parsed = Parse(args);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_TRUE(parsed->help);
  }
  EXPECT_EQ(Parse({"help", "runs"})->command, "runs");
  // Help does not need the arguments.
  EXPECT_TRUE(Parse({"runs", "--help"}).ok());
}

TEST(CliArgsTest, UsageErrorsSayWhatIsWrong) {
  EXPECT_THAT(ErrorOf({"rusn", "x"}),
              HasSubstr("unknown command \"rusn\"; did you mean runs?"));
  EXPECT_THAT(ErrorOf({"runs", "sw-1", "--stat", "x"}),
              HasSubstr("unknown flag --stat for \"runs\"; did you mean "
                        "--state?"));
  EXPECT_THAT(ErrorOf({"--state", "x", "runs", "sw-1"}),
              HasSubstr("unknown flag --state (a command's flags go after "
                        "the command)"));
  EXPECT_THAT(ErrorOf({"runs", "sw-1", "--state"}),
              HasSubstr("--state needs a value (STATE)"));
  EXPECT_THAT(ErrorOf({"runs", "sw-1", "--all=yes"}),
              HasSubstr("--all takes no value"));
  EXPECT_THAT(ErrorOf({"runs", "sw-1", "--output", "xml"}),
              HasSubstr("--output: expected one of table, json, yaml; got "
                        "\"xml\""));
  EXPECT_THAT(ErrorOf({"runs"}), HasSubstr("\"runs\" needs SWEEP"));
  EXPECT_THAT(ErrorOf({"runs", "a", "b"}), HasSubstr("unexpected \"b\""));
  EXPECT_THAT(ErrorOf({"artifacts"}),
              HasSubstr("\"artifacts\" needs a subcommand: get, list"));
  EXPECT_THAT(ErrorOf({"artifacts", "put"}),
              HasSubstr("unknown command \"artifacts put\""));
  EXPECT_THAT(ErrorOf({}), HasSubstr("no command given"));
}

TEST(CliArgsTest, NegativeNumbersAreArguments) {
  absl::StatusOr<ParsedArgs> parsed = Parse({"runs", "-3"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->positional, ElementsAre("-3"));
}

TEST(CliArgsTest, HelpTextsListCommandsFlagsAndExamples) {
  const std::string program = ProgramHelp(Specs());
  EXPECT_THAT(program, HasSubstr("runs SWEEP"));
  EXPECT_THAT(program, HasSubstr("artifacts get RUN"));
  EXPECT_THAT(program, HasSubstr("LORACTL_SERVER"));
  EXPECT_THAT(program, HasSubstr("Exit status"));
  const std::string runs = CommandHelp("runs", Specs());
  EXPECT_THAT(runs, HasSubstr("Usage: loractl runs SWEEP [flags]"));
  EXPECT_THAT(runs, HasSubstr("--state STATE"));
  EXPECT_THAT(runs, HasSubstr("-a, --all"));
  EXPECT_THAT(runs, HasSubstr("Examples:\n  loractl runs sw-1 --state failed"));
  const std::string group = CommandHelp("artifacts", Specs());
  EXPECT_THAT(group, HasSubstr("artifacts get RUN"));
  EXPECT_THAT(group, HasSubstr("artifacts list"));
}

}  // namespace
}  // namespace lora::loractl
