#include "lora_core/train_config.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lora::core {
namespace {

using ::testing::HasSubstr;

TEST(TrainConfigTest, ParsesTheSeedJobWithTaskDefaults) {
  absl::StatusOr<TrainConfig> config = ParseTrainConfig(R"(
model: roberta-base
task: sst2
data_dir: /data/glue/SST-2
lora: {rank: 4, alpha: 16, target_modules: [query, value]}
epochs: 3
max_seq_len: 64
batch_size: 32
lr: 5.0e-4
warmup_ratio: 0.06
amp: bf16
)",
                                                        "job.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->model, "roberta-base");
  EXPECT_EQ(config->task, DataTask::kSst2);
  EXPECT_EQ(config->lora.rank, 4);
  EXPECT_EQ(config->lora.alpha, 16);
  EXPECT_EQ(config->amp, AmpMode::kBf16);
  EXPECT_EQ(config->head, HeadKind::kLinearOnPooler);
  EXPECT_EQ(config->metric_name, "val_accuracy");
  EXPECT_TRUE(config->metric_maximize);
  // JSON is YAML too, and the YAML written back parses to the same config.
  absl::StatusOr<TrainConfig> again =
      ParseTrainConfig(TrainConfigToYaml(*config), "again.yaml");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(TrainConfigToYaml(*again), TrainConfigToYaml(*config));
  EXPECT_TRUE(
      ParseTrainConfig(R"({"model": "gpt2", "task": "e2e"})", "j.json").ok());
}

struct BadCase {
  const char* yaml;
  const char* message;
};

class BadTrainConfigTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadTrainConfigTest, NamesFileLineAndKey) {
  absl::StatusOr<TrainConfig> config =
      ParseTrainConfig(GetParam().yaml, "job.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadTrainConfigTest,
    ::testing::Values(
        BadCase{"model: gpt2\ntask: e2e\nlora: {rank: 0}\n",
                "job.yaml:3: lora.rank: expected an integer >= 1, got 0"},
        BadCase{"model: gpt2\ntask: e2e\nlr: -1\n",
                "job.yaml:3: lr: expected a number in (0, "},
        BadCase{"model: gpt2\ntask: e2e\nepochs: three\n",
                "job.yaml:3: epochs: expected an integer, got \"three\""},
        BadCase{"model: gpt2\ntask: e2e\nlearning_rate: 0.1\n",
                "job.yaml:3: learning_rate: unknown key"},
        BadCase{"model: gpt2\ntask: e2e\nlora:\n  rnak: 4\n",
                "job.yaml:4: lora.rnak: unknown key"},
        BadCase{"model: gpt2\ntask: glue\n",
                "job.yaml:2: task: expected one of sst2, polarity, text, e2e"},
        BadCase{"model: roberta-base\ntask: sst2\namp: fp16\n",
                "job.yaml:3: amp: fp16 needs device: cuda"},
        BadCase{"model: roberta-base\ntask: sst2\nhead: lm\n",
                "job.yaml:3: head: head \"lm\" does not fit task \"sst2\""},
        BadCase{"task: sst2\n", "job.yaml: model: required key is missing"},
        BadCase{"model: gpt2\ntask: e2e\nepochs: 1\nepochs: 2\n",
                "job.yaml:4: epochs: given twice"},
        BadCase{"model: gpt2\ntask: [e2e\n", "job.yaml:3: not valid YAML"},
        BadCase{"", "job.yaml: file is empty"},
        BadCase{"model: gpt2\ntask: e2e\nwarmup_ratio: 1.0\n",
                "job.yaml:3: warmup_ratio: expected a number in [0, 1)"},
        BadCase{"model: gpt2\ntask: e2e\nmax_train_examples: -5\n",
                "job.yaml:3: max_train_examples: expected an integer >= 0, "
                "got -5"},
        BadCase{"model: gpt2\ntask: e2e\nworld_size: 0\n",
                "job.yaml:3: world_size: expected an integer >= 1, got 0"},
        BadCase{"model: gpt2\ntask: e2e\nbatch_size: 10\nworld_size: 4\n",
                "job.yaml:3: batch_size: 10 is not divisible by world_size 4"},
        BadCase{"model: gpt2\ntask: e2e\nworld_size: 3\n",
                "job.yaml:3: world_size: 3 does not divide batch_size 32 (the "
                "default)"}));

TEST(TrainConfigTest, MaxTrainExamplesIsOptionalAndRoundTrips) {
  absl::StatusOr<TrainConfig> all =
      ParseTrainConfig("model: gpt2\ntask: e2e\n", "job.yaml");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->max_train_examples, 0);
  EXPECT_EQ(TrainConfigToYaml(*all).find("max_train_examples"),
            std::string::npos);
  absl::StatusOr<TrainConfig> few = ParseTrainConfig(
      "model: roberta-base\ntask: polarity\nmax_train_examples: 300\n",
      "job.yaml");
  ASSERT_TRUE(few.ok()) << few.status();
  EXPECT_EQ(few->max_train_examples, 300);
  absl::StatusOr<TrainConfig> again =
      ParseTrainConfig(TrainConfigToYaml(*few), "again.yaml");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->max_train_examples, 300);
}

TEST(TrainConfigTest, WorldSizeDefaultsToOneAndRoundTrips) {
  absl::StatusOr<TrainConfig> one =
      ParseTrainConfig("model: gpt2\ntask: e2e\n", "job.yaml");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->world_size, 1);
  // Left out when 1, so single-process jobs read as they always did.
  EXPECT_EQ(TrainConfigToYaml(*one).find("world_size"), std::string::npos);

  absl::StatusOr<TrainConfig> two = ParseTrainConfig(
      "model: gpt2\ntask: e2e\nbatch_size: 8\nworld_size: 2\n", "job.yaml");
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->world_size, 2);
  absl::StatusOr<TrainConfig> again =
      ParseTrainConfig(TrainConfigToYaml(*two), "again.yaml");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->world_size, 2);
  EXPECT_EQ(TrainConfigToYaml(*again), TrainConfigToYaml(*two));
}

}  // namespace
}  // namespace lora::core
