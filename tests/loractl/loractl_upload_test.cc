// `loractl submit` with local inputs against a real lorad: the dataset and
// checkpoint folders a sweep names are uploaded once as content-addressed
// artifacts, the sweep is stored with their ids in place of the paths
// (every other byte and line kept), and a resubmission uploads nothing.
// A dry run contacts no server.
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lora_core/model_config.h"
#include "sweep/artifact_manifest.h"
#include "tests/integration/test_clients.h"
#include "tests/loractl/e2e_fixture.h"

namespace lora::loractl::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

const char kSweep[] = R"(# SST-2 from a local folder, on a local checkpoint.
name: local-inputs
model: ./checkpoints/tiny   # a Hugging Face folder
task: sst2
data_dir: ./data/SST-2
parameters:
  lora.rank: [1, 2]
fixed: {epochs: 1, batch_size: 4}
)";

class LoractlUploadTest : public LoractlE2eTest {
 protected:
  void SetUp() override {
    LoractlE2eTest::SetUp();
    if (HasFatalFailure()) return;
    WriteFile("data/SST-2/train.tsv",
              "sentence\tlabel\na fine film\t1\na dull film\t0\n");
    WriteFile("data/SST-2/dev.tsv", "sentence\tlabel\ngood\t1\nbad\t0\n");
    absl::StatusOr<core::ModelConfig> tiny =
        core::BuiltinModelConfig("roberta-tiny");
    ASSERT_TRUE(tiny.ok()) << tiny.status();
    WriteFile("checkpoints/tiny/config.json", core::ModelConfigToJson(*tiny));
    sweep_file_ = WriteFile("local.yaml", kSweep);
  }

  std::string IdOf(const std::string& folder) {
    absl::StatusOr<sweep::ArtifactManifest> manifest =
        sweep::ManifestOfFolder(work_ + "/" + folder);
    EXPECT_TRUE(manifest.ok()) << manifest.status();
    return manifest.ok() ? manifest->artifact_id : "";
  }

  std::string sweep_file_;
};

TEST_F(LoractlUploadTest, DryRunContactsNoServer) {
  env_.vars["LORACTL_SERVER"] = "127.0.0.1:1";
  const LoractlResult result = Run({"submit", sweep_file_, "--dry-run"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("is valid (dry run"));
  EXPECT_THAT(result.out, HasSubstr("2 runs"));
  EXPECT_THAT(result.err, IsEmpty());
  EXPECT_THAT(AllSweeps(), IsEmpty());
  EXPECT_THAT(AllArtifacts(), IsEmpty());
}

TEST_F(LoractlUploadTest, LocalFoldersAreUploadedOnceAndReplacedByTheirIds) {
  const std::string data_id = IdOf("data/SST-2");
  const std::string model_id = IdOf("checkpoints/tiny");

  const LoractlResult first = Run({"submit", sweep_file_});
  ASSERT_EQ(first.exit_code, 0) << Describe({"submit", sweep_file_}, first);
  EXPECT_THAT(first.err,
              HasSubstr("data_dir ./data/SST-2: uploaded as " + data_id));
  EXPECT_THAT(first.err,
              HasSubstr("model ./checkpoints/tiny: uploaded as " + model_id));
  const std::string sweep_id = SweepIdOf(first.out);
  ASSERT_FALSE(sweep_id.empty()) << first.out;

  // The stored artifacts are the folders' content addresses.
  std::vector<std::string> kinds;
  for (const v1::Artifact& artifact : AllArtifacts()) {
    if (artifact.artifact_id() == data_id) {
      EXPECT_EQ(artifact.kind(), v1::ARTIFACT_KIND_DATASET);
      kinds.push_back("dataset");
    } else if (artifact.artifact_id() == model_id) {
      EXPECT_EQ(artifact.kind(), v1::ARTIFACT_KIND_BASE_CHECKPOINT);
      kinds.push_back("checkpoint");
    } else {
      ADD_FAILURE() << "unexpected artifact " << artifact.artifact_id();
    }
  }
  EXPECT_EQ(kinds.size(), 2u);

  // The sweep as stored: only the two values changed, lines and comments
  // kept.
  absl::StatusOr<v1::Sweep> sweep =
      integration::GetSweep(sweeps_.get(), sweep_id);
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  const std::string expected = absl::StrReplaceAll(
      kSweep, {{"model: ./checkpoints/tiny ",
                absl::StrCat("model: \"", model_id, "\" ")},
               {"data_dir: ./data/SST-2",
                absl::StrCat("data_dir: \"", data_id, "\"")}});
  EXPECT_EQ(sweep->spec_yaml(), expected);
  absl::StatusOr<std::vector<v1::Run>> runs =
      integration::ListAllRuns(sweeps_.get(), sweep_id, 100);
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 2u);
  for (const v1::Run& run : *runs) {
    EXPECT_EQ(run.config().dataset_artifact_id(), data_id);
    EXPECT_EQ(run.config().model_artifact_id(), model_id);
  }

  // Again: nothing is sent, the sweep already exists.
  const LoractlResult second = Run({"submit", sweep_file_, "--output", "json"});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_THAT(second.err, HasSubstr("already on lorad as " + data_id));
  EXPECT_THAT(second.err, HasSubstr("already on lorad as " + model_id));
  const nlohmann::json json = nlohmann::json::parse(second.out);
  EXPECT_TRUE(json["already_existed"].get<bool>());
  EXPECT_EQ(json["sweep"]["sweep_id"], sweep_id);
  ASSERT_EQ(json["uploaded_inputs"].size(), 2u);
  for (const nlohmann::json& input : json["uploaded_inputs"]) {
    EXPECT_TRUE(input["already_on_server"].get<bool>());
  }
  EXPECT_EQ(AllArtifacts().size(), 2u);
  EXPECT_EQ(AllSweeps().size(), 1u);
}

}  // namespace
}  // namespace lora::loractl::testing
