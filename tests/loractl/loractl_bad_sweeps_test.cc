// `loractl submit` of bad sweep files against a real lorad: every kind of
// mistake exits 2 with a message naming the file, the line and the key,
// and nothing is created on the server (no sweep, no artifact).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/loractl/e2e_fixture.h"

namespace lora::loractl::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

struct BadSweep {
  std::string kind;
  std::string text;
  // After "<file>:": "<line>: <key>: <start of the problem>".
  std::string expected;
};

std::string Numbers(int count) {
  std::vector<int> values;
  for (int i = 1; i <= count; ++i) values.push_back(i);
  return absl::StrCat("[", absl::StrJoin(values, ", "), "]");
}

std::vector<BadSweep> BadSweeps() {
  const std::string head = "name: bad\nmodel: roberta-tiny\ntask: polarity\n";
  return {
      {"syntax_error", "name: bad\nmodel: [roberta-tiny\ntask: polarity\n",
       "3: not valid YAML"},
      {"unknown_key", head + "paramters:\n  lora.rank: [1, 2]\n",
       "4: paramters: unknown key; did you mean parameters?"},
      {"unknown_nested_key", head + "parameters:\n  lora.rnak: [1, 2]\n",
       "5: lora.rnak: unknown key; did you mean rank?"},
      {"wrong_type", head + "fixed:\n  lr: fast\n",
       "5: lr: expected a number, got \"fast\""},
      {"wrong_type_in_list", head + "parameters:\n  lora.rank: [1, two]\n",
       "5: lora.rank: expected an integer, got \"two\""},
      {"rank_out_of_range", head + "parameters:\n  lora.rank: [4, 0]\n",
       "5: lora.rank: expected an integer >= 1, got 0"},
      {"alpha_out_of_range", head + "fixed:\n  lora.alpha: 0\n",
       "5: lora.alpha: expected a number in (0"},
      {"epochs_out_of_range", head + "fixed:\n  epochs: 0\n",
       "5: epochs: expected an integer >= 1"},
      {"empty_grid_list", head + "parameters:\n  lora.rank: []\n",
       "5: parameters.lora.rank: the list of values is empty"},
      {"unknown_model", "name: bad\nmodel: robreta-base\ntask: polarity\n",
       "2: model: unknown model \"robreta-base\""},
      {"unknown_task", "name: bad\nmodel: roberta-tiny\ntask: sst3\n",
       "3: task: expected one of sst2, polarity, text, e2e; got \"sst3\""},
      {"missing_data_dir",
       "name: bad\nmodel: roberta-tiny\ntask: sst2\ndata_dir: ./no/such\n",
       "4: data_dir: \"./no/such\" is not a folder"},
      {"grid_over_the_limit",
       head + "parameters:\n  seed: " + Numbers(101) +
           "\n  lora.rank: " + Numbers(100) + "\n",
       "5: parameters: the grid ("},
      {"duplicate_key", head + "name: again\n", "4: name: given twice"},
      {"duplicate_nested_key", head + "fixed:\n  epochs: 2\n  epochs: 3\n",
       "6: fixed.epochs: given twice"},
      {"fp16_on_cpu", head + "fixed:\n  amp: fp16\n",
       "5: amp: fp16 needs device: cuda"},
      {"seq_len_too_long",
       "name: bad\nmodel: roberta-base\ntask: polarity\nfixed:\n"
       "  max_seq_len: 1024\n",
       "5: max_seq_len: expected at most 512 for roberta-base"},
      {"bad_metric", head + "metric: {name: val_acuracy}\n",
       "4: metric.name: task polarity reports val_accuracy"},
      {"range_without_random",
       head + "parameters:\n  lr: {min: 1.0e-4, max: 1.0e-3}\n",
       "5: parameters.lr: a range ({min, max}) needs method: random"},
      {"count_without_random", head + "count: 3\nparameters: {seed: [0]}\n",
       "4: count: only used by method: random"},
      {"lora_target_not_in_model",
       head + "fixed:\n  lora.target_modules: [c_attn]\n",
       "5: lora.target_modules:"},
      {"swept_and_fixed",
       head + "parameters:\n  seed: [0, 1]\nfixed:\n  seed: 3\n",
       "7: fixed.seed: also swept in parameters (line 5)"},
      {"worker_owned_key", head + "fixed:\n  threads: 8\n",
       "5: fixed.threads: cannot be set per run"},
      {"log_range_from_zero",
       head + "method: random\ncount: 2\nparameters:\n"
              "  lr: {min: 0, max: 1.0e-3, distribution: log_uniform}\n",
       "7: parameters.lr.min: log_uniform needs min > 0"},
  };
}

class LoractlBadSweepsTest : public LoractlE2eTest {};

TEST_F(LoractlBadSweepsTest, EveryKindExitsTwoNamingFileLineAndKey) {
  const std::vector<BadSweep> cases = BadSweeps();
  ASSERT_GE(cases.size(), 15u);
  for (const BadSweep& bad : cases) {
    SCOPED_TRACE(bad.kind);
    const std::string file = WriteFile("bad-" + bad.kind + ".yaml", bad.text);
    for (bool dry_run : {false, true}) {
      std::vector<std::string> args = {"submit", file};
      if (dry_run) args.push_back("--dry-run");
      const LoractlResult result = Run(args);
      EXPECT_EQ(result.exit_code, 2) << Describe(args, result);
      EXPECT_THAT(result.err, HasSubstr(file + ":" + bad.expected))
          << Describe(args, result);
      EXPECT_THAT(result.out, IsEmpty()) << Describe(args, result);
    }
  }
  EXPECT_THAT(AllSweeps(), IsEmpty());
  EXPECT_THAT(AllArtifacts(), IsEmpty());
}

TEST_F(LoractlBadSweepsTest, UnreadableAndEmptyFilesExitTwo) {
  LoractlResult result = Run({"submit", "missing.yaml"});
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_THAT(result.err, HasSubstr("cannot read the sweep file"));
  EXPECT_THAT(result.err, HasSubstr("missing.yaml"));
  const std::string empty = WriteFile("empty.yaml", "# nothing here\n");
  result = Run({"submit", empty});
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_THAT(result.err, HasSubstr("empty.yaml: file is empty"));
  EXPECT_THAT(AllSweeps(), IsEmpty());
}

TEST_F(LoractlBadSweepsTest, AValidSweepStillGoesThrough) {
  // The same server accepts a good file: the failures above are the files'.
  const std::string file =
      WriteFile("good.yaml",
                "name: good\nmodel: roberta-tiny\ntask: polarity\nparameters:\n"
                "  lora.rank: [1, 2]\n");
  const LoractlResult result = Run({"submit", file});
  ASSERT_EQ(result.exit_code, 0) << Describe({"submit", file}, result);
  EXPECT_EQ(AllSweeps().size(), 1u);
}

}  // namespace
}  // namespace lora::loractl::testing
