#include "sweep/local_inputs.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lora::sweep {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const char kId[] =
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const char kOtherId[] =
    "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

class LocalInputsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* info =
        ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = (fs::path(std::getenv("TEST_TMPDIR")) / info->name()).string();
    fs::remove_all(root_);
    fs::create_directories(root_ + "/home/data/sst2");
    fs::create_directories(root_ + "/ckpt");
    fs::create_directories(root_ + "/ckpt2");
    const char* home = std::getenv("HOME");
    if (home != nullptr) saved_home_ = home;
    setenv("HOME", (root_ + "/home").c_str(), 1);
    // Relative folders are resolved against the current directory.
    saved_cwd_ = fs::current_path();
    fs::current_path(root_);
  }

  void TearDown() override {
    fs::current_path(saved_cwd_);
    if (saved_home_.empty()) {
      unsetenv("HOME");
    } else {
      setenv("HOME", saved_home_.c_str(), 1);
    }
  }

  // `text` with "$ROOT" replaced by this test's folder.
  std::string Sweep(const std::string& text) {
    return absl::StrReplaceAll(text, {{"$ROOT", root_}});
  }

  std::string root_;
  std::string saved_home_;
  fs::path saved_cwd_;
};

// Column (0-based) of the first `needle` on line `line` (0-based) of `text`.
int ColumnOf(const std::string& text, int line, const std::string& needle) {
  size_t start = 0;
  for (int i = 0; i < line; ++i) start = text.find('\n', start) + 1;
  return static_cast<int>(text.find(needle, start) - start);
}

TEST_F(LocalInputsTest, FindsTopLevelModelFolderAndDataDir) {
  const std::string text = Sweep(
      "name: s\n"
      "model: $ROOT/ckpt   # a local checkpoint\n"
      "task: sst2\n"
      "data_dir: ~/data/sst2\n");
  absl::StatusOr<std::vector<LocalInput>> inputs =
      FindLocalInputs(text, "sweep.yaml");
  ASSERT_TRUE(inputs.ok()) << inputs.status();
  ASSERT_EQ(inputs->size(), 2u);

  const LocalInput& model = (*inputs)[0];
  EXPECT_EQ(model.key, "model");
  EXPECT_EQ(model.value, root_ + "/ckpt");
  EXPECT_EQ(model.path, root_ + "/ckpt");
  EXPECT_EQ(model.kind, kArtifactKindBaseCheckpoint);
  EXPECT_EQ(model.line, 1);
  EXPECT_EQ(model.column, 7);

  const LocalInput& data = (*inputs)[1];
  EXPECT_EQ(data.key, "data_dir");
  EXPECT_EQ(data.value, "~/data/sst2");
  EXPECT_EQ(data.path, root_ + "/home/data/sst2");
  EXPECT_EQ(data.kind, kArtifactKindDataset);
  EXPECT_EQ(data.line, 3);
  EXPECT_EQ(data.column, 10);
}

TEST_F(LocalInputsTest, SkipsBuiltinNamesArtifactIdsAndNonFolders) {
  // A folder named like a built-in model does not make it a local input:
  // the sweep resolves built-in names first.
  fs::create_directories("roberta-base");
  fs::create_directories("gpt2");
  const std::string text = absl::StrCat(
      "name: s\n"
      "model: roberta-base\n"
      "task: sst2\n"
      "data_dir: \"",
      kId,
      "\"\n"
      "method: grid\n"
      "parameters:\n"
      "  model: [gpt2, ",
      kId, ", ./no/such/folder]\n");
  absl::StatusOr<std::vector<LocalInput>> inputs =
      FindLocalInputs(text, "sweep.yaml");
  ASSERT_TRUE(inputs.ok()) << inputs.status();
  EXPECT_TRUE(inputs->empty());
}

TEST_F(LocalInputsTest, FindsFoldersInSweptModelListsAndPoints) {
  const std::string text = Sweep(
      "name: s\n"
      "task: sst2\n"
      "method: grid\n"
      "parameters:\n"
      "  model: [roberta-base, '$ROOT/ckpt']\n"
      "  lora.rank: [1, 2]\n");
  absl::StatusOr<std::vector<LocalInput>> inputs =
      FindLocalInputs(text, "sweep.yaml");
  ASSERT_TRUE(inputs.ok()) << inputs.status();
  ASSERT_EQ(inputs->size(), 1u);
  EXPECT_EQ((*inputs)[0].key, "parameters.model");
  EXPECT_EQ((*inputs)[0].path, root_ + "/ckpt");
  EXPECT_EQ((*inputs)[0].line, 4);
  EXPECT_EQ((*inputs)[0].column, ColumnOf(text, 4, "'"));

  const std::string wandb = Sweep(
      "name: s\n"
      "task: sst2\n"
      "parameters:\n"
      "  model:\n"
      "    values:\n"
      "      - $ROOT/ckpt\n"
      "      - ~/data\n");
  inputs = FindLocalInputs(wandb, "sweep.yaml");
  ASSERT_TRUE(inputs.ok()) << inputs.status();
  ASSERT_EQ(inputs->size(), 2u);
  EXPECT_EQ((*inputs)[1].value, "~/data");
  EXPECT_EQ((*inputs)[1].path, root_ + "/home/data");

  const std::string points = Sweep(
      "name: s\n"
      "task: sst2\n"
      "method: list\n"
      "points:\n"
      "  - {model: $ROOT/ckpt, lora.rank: 1}\n"
      "  - {model: roberta-base}\n"
      "  - model: ckpt2\n");
  inputs = FindLocalInputs(points, "sweep.yaml");
  ASSERT_TRUE(inputs.ok()) << inputs.status();
  ASSERT_EQ(inputs->size(), 2u);
  EXPECT_EQ((*inputs)[0].key, "points[0].model");
  EXPECT_EQ((*inputs)[1].key, "points[2].model");
  EXPECT_EQ((*inputs)[1].path, "ckpt2");  // relative, as written
  EXPECT_EQ((*inputs)[1].line, 6);
  EXPECT_EQ((*inputs)[1].column, 11);
}

TEST_F(LocalInputsTest, MissingDataDirNamesFileLineAndPath) {
  const std::string text =
      "name: s\n"
      "model: roberta-base\n"
      "task: sst2\n"
      "\n"
      "data_dir: ~/data/nope  # typo\n";
  absl::StatusOr<std::vector<LocalInput>> inputs =
      FindLocalInputs(text, "sweep.yaml");
  EXPECT_EQ(inputs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(inputs.status().message(), HasSubstr("sweep.yaml:5: data_dir:"));
  EXPECT_THAT(inputs.status().message(), HasSubstr("~/data/nope"));
  EXPECT_THAT(inputs.status().message(), HasSubstr(root_ + "/home/data/nope"));
}

TEST_F(LocalInputsTest, InvalidYamlNamesFileAndLine) {
  absl::StatusOr<std::vector<LocalInput>> inputs =
      FindLocalInputs("name: s\nmodel: [a, b\n", "bad.yaml");
  EXPECT_EQ(inputs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(inputs.status().message(), HasSubstr("bad.yaml:"));
}

// Finds the inputs of `text` and replaces input i with `ids[i]`.
absl::StatusOr<std::string> ReplaceAll(const std::string& text,
                                       const std::vector<std::string>& ids) {
  absl::StatusOr<std::vector<LocalInput>> inputs =
      FindLocalInputs(text, "sweep.yaml");
  if (!inputs.ok()) return inputs.status();
  if (inputs->size() != ids.size()) {
    return absl::InternalError(absl::StrCat("found ", inputs->size(),
                                            " inputs, expected ", ids.size()));
  }
  std::vector<std::pair<LocalInput, std::string>> replacements;
  for (size_t i = 0; i < ids.size(); ++i) {
    replacements.emplace_back((*inputs)[i], ids[i]);
  }
  return ReplaceScalars(text, replacements);
}

int Lines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

TEST_F(LocalInputsTest, ReplaceKeepsEveryOtherByteAndLine) {
  const std::string text = Sweep(
      "# My sweep\n"
      "name: s   # name\n"
      "model: $ROOT/ckpt   # local checkpoint: uploaded\n"
      "task: sst2\n"
      "data_dir: '~/data/sst2'\n"
      "method: grid\n"
      "parameters:\n"
      "  model: [roberta-base, \"$ROOT/ckpt2\" , $ROOT/ckpt]  # three\n"
      "  lora.rank: [1, 2]\n"
      "fixed: {epochs: 1}\n");
  absl::StatusOr<std::string> result =
      ReplaceAll(text, {kId, kOtherId, "sha256:ab", kId});
  ASSERT_TRUE(result.ok()) << result.status();

  const std::string expected = absl::StrCat(
      "# My sweep\n"
      "name: s   # name\n"
      "model: \"",
      kId,
      "\"   # local checkpoint: uploaded\n"
      "task: sst2\n"
      "data_dir: \"",
      kOtherId,
      "\"\n"
      "method: grid\n"
      "parameters:\n"
      "  model: [roberta-base, \"sha256:ab\" , \"",
      kId,
      "\"]  # three\n"
      "  lora.rank: [1, 2]\n"
      "fixed: {epochs: 1}\n");
  EXPECT_EQ(*result, expected);
  EXPECT_EQ(Lines(*result), Lines(text));

  const YAML::Node root = YAML::Load(*result);
  EXPECT_EQ(root["model"].as<std::string>(), kId);
  EXPECT_EQ(root["data_dir"].as<std::string>(), kOtherId);
  EXPECT_EQ(root["parameters"]["model"][0].as<std::string>(), "roberta-base");
  EXPECT_EQ(root["parameters"]["model"][1].as<std::string>(), "sha256:ab");
  EXPECT_EQ(root["parameters"]["model"][2].as<std::string>(), kId);
  EXPECT_EQ(root["parameters"]["model"][2].Mark().line, 7);
}

TEST_F(LocalInputsTest, ReplaceHandlesQuotingFlowMapsAndProperties) {
  const std::string text = Sweep(
      "{name: s, task: sst2, model: '$ROOT/ckpt', data_dir: ~/data/sst2}\n"
      "# trailing comment\n");
  absl::StatusOr<std::string> result = ReplaceAll(text, {kId, kOtherId});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, absl::StrCat("{name: s, task: sst2, model: \"", kId,
                                  "\", data_dir: \"", kOtherId,
                                  "\"}\n# trailing comment\n"));

  // An anchor stays in place; its alias then reads the new value too.
  const std::string anchored = Sweep(
      "name: s\n"
      "task: sst2\n"
      "model: &m $ROOT/ckpt\n"
      "data_dir: !!str ~/data/sst2\n"
      "method: list\n"
      "points:\n"
      "  - {model: *m}\n");
  result = ReplaceAll(anchored, {kId, kOtherId, kId});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, absl::StrCat("name: s\ntask: sst2\nmodel: &m \"", kId,
                                  "\"\ndata_dir: !!str \"", kOtherId,
                                  "\"\nmethod: list\npoints:\n"
                                  "  - {model: *m}\n"));
  EXPECT_EQ(YAML::Load(*result)["points"][0]["model"].as<std::string>(), kId);

  // Quotes and backslashes in the new value are escaped; '' in the old one.
  const std::string quoted = Sweep("name: s\nmodel: '$ROOT/ckpt'\n");
  std::vector<std::pair<LocalInput, std::string>> replacements;
  absl::StatusOr<std::vector<LocalInput>> inputs =
      FindLocalInputs(quoted, "sweep.yaml");
  ASSERT_TRUE(inputs.ok() && inputs->size() == 1u);
  result = ReplaceScalars(quoted, {{(*inputs)[0], "a \"b\" \\c\td"}});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, "name: s\nmodel: \"a \\\"b\\\" \\\\c\\td\"\n");
  EXPECT_EQ(YAML::Load(*result)["model"].as<std::string>(), "a \"b\" \\c\td");
}

TEST_F(LocalInputsTest, ReplaceKeepsCrlfAndByteOrderMark) {
  const std::string text =
      Sweep("\xEF\xBB\xBFmodel: $ROOT/ckpt\r\nname: s # x\r\n");
  absl::StatusOr<std::string> result = ReplaceAll(text, {kId});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, absl::StrCat("\xEF\xBB\xBFmodel: \"", kId,
                                  "\"\r\nname: s # x\r\n"));
}

TEST_F(LocalInputsTest, ReplaceRefusesMultiLineScalars) {
  // Quoted scalars folded over lines read "<root>/ ckpt".
  fs::create_directories(root_ + "/ ckpt");
  for (const std::string& text : {
           Sweep("name: s\nmodel: >-\n  $ROOT/ckpt\n"),
           Sweep("name: s\nmodel: |-\n  $ROOT/ckpt\n"),
           Sweep("name: s\nmodel: \"$ROOT/\n  ckpt\"\n"),
           Sweep("name: s\nmodel: \"$ROOT/\\\n  ckpt\"\n"),
           Sweep("name: s\nmodel: '$ROOT/\n  ckpt'\n"),
           Sweep("name: s\nmodel: &m\n  $ROOT/ckpt\n"),
       }) {
    absl::StatusOr<std::vector<LocalInput>> inputs =
        FindLocalInputs(text, "sweep.yaml");
    ASSERT_TRUE(inputs.ok()) << text << inputs.status();
    ASSERT_EQ(inputs->size(), 1u) << text;
    absl::StatusOr<std::string> result =
        ReplaceScalars(text, {{(*inputs)[0], kId}});
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument)
        << text;
    EXPECT_THAT(result.status().message(), HasSubstr("line 2")) << text;
  }

  // A plain scalar folded over two lines reads "<root>/ck pt".
  fs::create_directories(root_ + "/ck pt");
  const std::string folded = Sweep("name: s\nmodel: $ROOT/ck\n  pt\n");
  absl::StatusOr<std::vector<LocalInput>> inputs =
      FindLocalInputs(folded, "sweep.yaml");
  ASSERT_TRUE(inputs.ok() && inputs->size() == 1u) << inputs.status();
  absl::StatusOr<std::string> result =
      ReplaceScalars(folded, {{(*inputs)[0], kId}});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("several lines"));
}

TEST_F(LocalInputsTest, ReplaceRefusesStaleOrConflictingInputs) {
  const std::string text = Sweep("name: s\nmodel: $ROOT/ckpt\n");
  absl::StatusOr<std::vector<LocalInput>> inputs =
      FindLocalInputs(text, "sweep.yaml");
  ASSERT_TRUE(inputs.ok() && inputs->size() == 1u);

  LocalInput moved = (*inputs)[0];
  moved.column += 1;
  EXPECT_EQ(ReplaceScalars(text, {{moved, kId}}).status().code(),
            absl::StatusCode::kInvalidArgument);

  LocalInput other_value = (*inputs)[0];
  other_value.value = "something else";
  EXPECT_EQ(ReplaceScalars(text, {{other_value, kId}}).status().code(),
            absl::StatusCode::kInvalidArgument);

  absl::StatusOr<std::string> twice =
      ReplaceScalars(text, {{(*inputs)[0], kId}, {(*inputs)[0], kOtherId}});
  EXPECT_THAT(twice.status().message(), HasSubstr("two different"));

  // The same replacement twice is fine.
  EXPECT_TRUE(
      ReplaceScalars(text, {{(*inputs)[0], kId}, {(*inputs)[0], kId}}).ok());
  // No replacements: the text unchanged.
  EXPECT_EQ(*ReplaceScalars(text, {}), text);
}

}  // namespace
}  // namespace lora::sweep
