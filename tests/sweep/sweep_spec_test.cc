// Sweep files: one test per class of validation error (each asserting that
// the message names the file, the line and the key), expansion counts and
// determinism, and the ids that make resubmission idempotent.
#include "sweep/sweep_spec.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lora_core/model_config.h"

namespace lora::sweep {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<ExpandedSweep> Load(const std::string& text,
                                   SweepValidationOptions options = {}) {
  if (!options.resolve_model) options = LocalValidationOptions();
  return LoadSweep(text, "sweep.yaml", options);
}

// The error of a sweep that must not load.
std::string ErrorOf(const std::string& text,
                    SweepValidationOptions options = {}) {
  absl::StatusOr<ExpandedSweep> sweep = Load(text, options);
  EXPECT_FALSE(sweep.ok()) << text;
  return sweep.ok() ? "" : std::string(sweep.status().message());
}

const char kBase[] = R"(name: rank-ablation
model: roberta-tiny
task: polarity
method: grid
parameters:
  lora.rank: [1, 2, 4, 8]
  seed: [0, 1, 2]
fixed:
  lora.target_modules: [query, value]
  epochs: 3
  lr: 5.0e-4
max_attempts: 2
metric: {name: val_accuracy, goal: maximize}
)";

TEST(SweepSpecTest, GridExpandsToTheCartesianProductLastKeyFastest) {
  absl::StatusOr<ExpandedSweep> sweep = Load(kBase);
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  ASSERT_EQ(sweep->runs.size(), 12u);
  EXPECT_EQ(sweep->runs[0].parameters.dump(), R"({"lora.rank":1,"seed":0})");
  EXPECT_EQ(sweep->runs[1].parameters.dump(), R"({"lora.rank":1,"seed":1})");
  EXPECT_EQ(sweep->runs[11].parameters.dump(), R"({"lora.rank":8,"seed":2})");
  EXPECT_EQ(sweep->runs[5].config.lora.rank, 2);
  EXPECT_EQ(sweep->runs[5].config.seed, 2u);
  EXPECT_EQ(sweep->runs[5].config.epochs, 3);
  EXPECT_DOUBLE_EQ(sweep->runs[5].config.lr, 5e-4);
  EXPECT_EQ(sweep->spec.max_attempts, 2);
  std::set<std::string> hashes, ids;
  for (const ExpandedRun& run : sweep->runs) {
    EXPECT_EQ(run.index, static_cast<int64_t>(&run - &sweep->runs[0]));
    hashes.insert(run.config_hash);
    ids.insert(run.run_id);
    EXPECT_EQ(run.run_id.rfind("run-", 0), 0u);
    // The resolved config reads back to the same run.
    absl::StatusOr<core::TrainConfig> again =
        core::ParseTrainConfig(run.config_yaml, "run.yaml");
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(core::TrainConfigToYaml(*again), run.config_yaml);
  }
  EXPECT_EQ(hashes.size(), 12u);
  EXPECT_EQ(ids.size(), 12u);
  EXPECT_EQ(sweep->sweep_id.rfind("sw-", 0), 0u);
  EXPECT_EQ(sweep->sweep_id.size(), 23u);
}

TEST(SweepSpecTest, ParameterCountsComeFromTheModelConfig) {
  absl::StatusOr<ExpandedSweep> sweep = Load(R"(name: counts
model: roberta-base
task: polarity
parameters: {lora.rank: [1, 8]}
fixed: {lora.target_modules: [query, value]}
)");
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  // 12 layers x (query, value) x r x (768 + 768).
  EXPECT_EQ(sweep->runs[0].counts.lora, 36864);
  EXPECT_EQ(sweep->runs[1].counts.lora, 8 * 36864);
  EXPECT_EQ(sweep->runs[1].counts.trainable,
            sweep->runs[1].counts.lora + sweep->runs[1].counts.head);
  EXPECT_GT(sweep->runs[1].counts.total, 124000000);
}

TEST(SweepSpecTest, SameSweepWrittenDifferentlyHasTheSameIds) {
  const std::string rewritten = R"(# the same sweep, reordered and respelled
metric: {goal: maximize, name: val_accuracy}
max_attempts: 2
fixed:
  lr: 0.0005            # 5.0e-4
  epochs: 3
  lora: {target_modules: [query, value]}
parameters:
  lora: {rank: [1, 2, 4, 8]}
  seed: [0, 1, 2]
task: polarity
model: roberta-tiny
name: rank-ablation
)";
  absl::StatusOr<ExpandedSweep> a = Load(kBase);
  absl::StatusOr<ExpandedSweep> b = Load(rewritten);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->sweep_id, b->sweep_id);
  for (size_t i = 0; i < a->runs.size(); ++i) {
    EXPECT_EQ(a->runs[i].config_hash, b->runs[i].config_hash);
    EXPECT_EQ(a->runs[i].run_id, b->runs[i].run_id);
  }
  // Anything that changes what is trained changes the id.
  std::string changed = kBase;
  changed.replace(changed.find("epochs: 3"), 9, "epochs: 4");
  absl::StatusOr<ExpandedSweep> c = Load(changed);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_NE(a->sweep_id, c->sweep_id);
  EXPECT_NE(a->runs[0].config_hash, c->runs[0].config_hash);
  // Threads (resources) do not change a run's hash.
  absl::StatusOr<ExpandedSweep> d =
      Load(std::string(kBase) + "resources: {cpu_threads: 4}\n");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->runs[0].config.threads, 4);
  EXPECT_EQ(a->runs[0].config_hash, d->runs[0].config_hash);
}

const char kRandom[] = R"(name: random-search
model: roberta-tiny
task: polarity
method: random
count: 40
seed: 7
parameters:
  lr: {min: 1.0e-5, max: 1.0e-2, distribution: log_uniform}
  lora.rank: {min: 1, max: 16}
  lora.alpha: [8, 16, 32]
)";

TEST(SweepSpecTest, RandomSearchIsDeterministicAndInRange) {
  absl::StatusOr<ExpandedSweep> a = Load(kRandom);
  absl::StatusOr<ExpandedSweep> b = Load(kRandom);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(static_cast<int64_t>(a->runs.size()) + a->duplicates_dropped, 40);
  ASSERT_EQ(a->runs.size(), b->runs.size());
  EXPECT_EQ(a->sweep_id, b->sweep_id);
  int below_1e3 = 0;
  for (size_t i = 0; i < a->runs.size(); ++i) {
    EXPECT_EQ(a->runs[i].config_hash, b->runs[i].config_hash);
    const core::TrainConfig& c = a->runs[i].config;
    EXPECT_GE(c.lr, 1e-5);
    EXPECT_LE(c.lr, 1e-2);
    if (c.lr < 1e-3) ++below_1e3;
    EXPECT_GE(c.lora.rank, 1);
    EXPECT_LE(c.lora.rank, 16);
    EXPECT_TRUE(c.lora.alpha == 8 || c.lora.alpha == 16 || c.lora.alpha == 32);
    EXPECT_TRUE(a->runs[i].parameters["lora.rank"].is_number_integer());
  }
  // Log-uniform: two thirds of the decades lie below 1e-3.
  EXPECT_GT(below_1e3, 15);
  std::string reseeded = kRandom;
  reseeded.replace(reseeded.find("seed: 7"), 7, "seed: 8");
  absl::StatusOr<ExpandedSweep> c = Load(reseeded);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_NE(a->sweep_id, c->sweep_id);
}

TEST(SweepSpecTest, RandomDrawsOfTheSameConfigAreDroppedOnce) {
  absl::StatusOr<ExpandedSweep> sweep = Load(R"(name: tiny-space
model: roberta-tiny
task: polarity
method: random
count: 30
parameters: {lora.rank: [1, 2]}
)");
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  EXPECT_EQ(sweep->runs.size(), 2u);
  EXPECT_EQ(sweep->duplicates_dropped, 28);
}

TEST(SweepSpecTest, ListMethodTakesExplicitPoints) {
  absl::StatusOr<ExpandedSweep> sweep = Load(R"(name: listed
model: roberta-tiny
task: polarity
method: list
points:
  - {lora.rank: 1, lr: 1.0e-3}
  - {lora: {rank: 8}, seed: 3}
  - {model: roberta-mini, lora.rank: 2}
)");
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  ASSERT_EQ(sweep->runs.size(), 3u);
  EXPECT_DOUBLE_EQ(sweep->runs[0].config.lr, 1e-3);
  EXPECT_EQ(sweep->runs[1].config.lora.rank, 8);
  EXPECT_EQ(sweep->runs[1].config.seed, 3u);
  EXPECT_EQ(sweep->runs[2].config.model, "roberta-mini");
  EXPECT_EQ(sweep->runs[2].model_config.hidden_size, 256);
}

TEST(SweepSpecTest, ModelMayBeSweptAndLocalCheckpointFoldersResolve) {
  const std::string folder =
      std::string(std::getenv("TEST_TMPDIR")) + "/my-checkpoint";
  std::filesystem::create_directories(folder);
  absl::StatusOr<core::ModelConfig> tiny =
      core::BuiltinModelConfig("roberta-tiny");
  ASSERT_TRUE(tiny.ok());
  std::ofstream(folder + "/config.json") << core::ModelConfigToJson(*tiny);
  absl::StatusOr<ExpandedSweep> sweep = Load(
      "name: models\ntask: polarity\nparameters:\n  model: [roberta-tiny, " +
      folder + "]\n");
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  ASSERT_EQ(sweep->runs.size(), 2u);
  EXPECT_EQ(sweep->runs[0].counts.total, sweep->runs[1].counts.total);
  EXPECT_NE(sweep->runs[0].config_hash, sweep->runs[1].config_hash);
}

// --- One test per class of validation error. ---

TEST(SweepSpecErrorTest, YamlSyntax) {
  EXPECT_THAT(ErrorOf("name: x\nmodel: [roberta-tiny\ntask: polarity\n"),
              HasSubstr("sweep.yaml:3: not valid YAML"));
}

TEST(SweepSpecErrorTest, InvalidUtf8) {
  EXPECT_THAT(ErrorOf("name: a\nmodel: roberta-tiny\ntask: pol\xc3\x28rity\n"),
              HasSubstr("sweep.yaml:3: not valid UTF-8"));
}

TEST(SweepSpecErrorTest, EmptyFile) {
  EXPECT_THAT(ErrorOf(""), HasSubstr("sweep.yaml: file is empty"));
  EXPECT_THAT(ErrorOf("# only a comment\n"),
              HasSubstr("sweep.yaml: file is empty"));
}

TEST(SweepSpecErrorTest, DuplicateKeys) {
  EXPECT_THAT(
      ErrorOf("name: a\nmodel: roberta-tiny\nname: b\ntask: polarity\n"),
      HasSubstr("sweep.yaml:3: name: given twice"));
  EXPECT_THAT(ErrorOf("name: a\nmodel: roberta-tiny\ntask: polarity\nfixed:\n"
                      "  epochs: 2\n  epochs: 3\n"),
              HasSubstr("sweep.yaml:6: fixed.epochs: given twice"));
  EXPECT_THAT(ErrorOf("name: a\nmodel: roberta-tiny\ntask: polarity\n"
                      "parameters:\n  seed: [0]\n  seed: [1]\n"),
              HasSubstr("sweep.yaml:6: parameters.seed: given twice"));
}

TEST(SweepSpecErrorTest, UnknownKeysSuggestTheNearestOne) {
  EXPECT_THAT(ErrorOf("name: a\nmodel: roberta-tiny\ntask: polarity\n"
                      "paramters: {seed: [0]}\n"),
              HasSubstr("sweep.yaml:4: paramters: unknown key; did you mean "
                        "parameters?"));
  EXPECT_THAT(ErrorOf("name: a\nmodel: roberta-tiny\ntask: polarity\n"
                      "fixed:\n  warmup_ration: 0.1\n"),
              HasSubstr("sweep.yaml:5: warmup_ration: unknown key; did you "
                        "mean warmup_ratio?"));
  EXPECT_THAT(ErrorOf("name: a\nmodel: roberta-tiny\ntask: polarity\n"
                      "parameters:\n  lora.rnak: [1, 2]\n"),
              HasSubstr("sweep.yaml:5: lora.rnak: unknown key; did you mean "
                        "rank?"));
}

TEST(SweepSpecErrorTest, WrongTypes) {
  EXPECT_THAT(ErrorOf("name: a\nmodel: roberta-tiny\ntask: polarity\n"
                      "fixed:\n  lr: fast\n"),
              HasSubstr("sweep.yaml:5: lr: expected a number, got \"fast\""));
  EXPECT_THAT(ErrorOf("name: a\nmodel: roberta-tiny\ntask: polarity\n"
                      "parameters:\n  lora.rank: [1, two]\n"),
              HasSubstr("sweep.yaml:5: lora.rank: expected an integer, got "
                        "\"two\""));
  EXPECT_THAT(ErrorOf("name: [a]\nmodel: roberta-tiny\ntask: polarity\n"),
              HasSubstr("sweep.yaml:1: name: expected a string"));
  EXPECT_THAT(ErrorOf("name: a\nmodel: roberta-tiny\ntask: polarity\n"
                      "parameters:\n  seed: 3\n"),
              HasSubstr("sweep.yaml:5: parameters.seed: expected a list of "
                        "values, got \"3\""));
}

TEST(SweepSpecErrorTest, OutOfRangeValues) {
  const std::string head = "name: a\nmodel: roberta-base\ntask: polarity\n";
  EXPECT_THAT(ErrorOf(head + "parameters:\n  lora.rank: [4, 0]\n"),
              HasSubstr("sweep.yaml:5: lora.rank: expected an integer >= 1, "
                        "got 0"));
  EXPECT_THAT(ErrorOf(head + "fixed:\n  lora.alpha: 0\n"),
              HasSubstr("sweep.yaml:5: lora.alpha: expected a number in (0"));
  EXPECT_THAT(ErrorOf(head + "fixed:\n  lr: -1.0e-4\n"),
              HasSubstr("sweep.yaml:5: lr: expected a number in (0"));
  EXPECT_THAT(ErrorOf(head + "fixed:\n  epochs: 0\n"),
              HasSubstr("sweep.yaml:5: epochs: expected an integer >= 1"));
  EXPECT_THAT(ErrorOf(head + "fixed:\n  batch_size: 0\n"),
              HasSubstr("sweep.yaml:5: batch_size: expected an integer >= 1"));
  EXPECT_THAT(ErrorOf(head + "fixed:\n  max_seq_len: 1024\n"),
              HasSubstr("sweep.yaml:5: max_seq_len: expected at most 512 for "
                        "roberta-base"));
  EXPECT_THAT(
      ErrorOf(head + "max_attempts: 0\n"),
      HasSubstr("sweep.yaml:4: max_attempts: expected an integer >= 1"));
}

TEST(SweepSpecErrorTest, Fp16NeedsCuda) {
  const std::string head = "name: a\nmodel: roberta-tiny\ntask: polarity\n";
  EXPECT_THAT(ErrorOf(head + "fixed:\n  amp: fp16\n"),
              HasSubstr("sweep.yaml:5: amp: fp16 needs device: cuda"));
  absl::StatusOr<ExpandedSweep> cuda =
      Load(head + "fixed:\n  amp: fp16\nresources: {device: cuda, gpus: 1}\n");
  ASSERT_TRUE(cuda.ok()) << cuda.status();
  EXPECT_EQ(cuda->runs[0].config.device, "cuda");
  EXPECT_THAT(ErrorOf(head + "resources: {device: cpu, gpus: 2}\n"),
              HasSubstr("sweep.yaml:4: resources.gpus: expected 0 with device "
                        "cpu"));
}

TEST(SweepSpecErrorTest, UnknownModel) {
  EXPECT_THAT(ErrorOf("name: a\nmodel: robreta-base\ntask: polarity\n"),
              HasSubstr("sweep.yaml:2: model: unknown model \"robreta-base\""));
  EXPECT_THAT(ErrorOf("name: a\nmodel: robreta-base\ntask: polarity\n"),
              HasSubstr("did you mean roberta-base?"));
  // An artifact id the coordinator does not hold.
  SweepValidationOptions server;
  server.resolve_model =
      [](const std::string& model) -> absl::StatusOr<core::ModelConfig> {
    return absl::NotFoundError("no artifact " + model);
  };
  EXPECT_THAT(ErrorOf("name: a\nmodel: sha256:" + std::string(64, 'a') +
                          "\ntask: polarity\n",
                      server),
              HasSubstr("sweep.yaml:2: model: unknown model \"sha256:aaaa"));
  EXPECT_THAT(ErrorOf("name: a\ntask: polarity\n"),
              HasSubstr("sweep.yaml: model: required key is missing"));
}

TEST(SweepSpecErrorTest, UnknownTaskAndMissingData) {
  EXPECT_THAT(ErrorOf("name: a\nmodel: roberta-tiny\ntask: sst3\n"),
              HasSubstr("sweep.yaml:3: task: expected one of sst2, polarity, "
                        "text, e2e; got \"sst3\" (did you mean sst2?)"));
  EXPECT_THAT(ErrorOf("name: a\nmodel: roberta-tiny\ntask: sst2\n"),
              HasSubstr("sweep.yaml: data_dir: required for task sst2"));
  EXPECT_THAT(ErrorOf("name: a\nmodel: roberta-tiny\ntask: sst2\n"
                      "data_dir: /no/such/folder\n"),
              HasSubstr("sweep.yaml:4: data_dir: \"/no/such/folder\" is not a "
                        "folder"));
  EXPECT_THAT(ErrorOf("name: a\nmodel: roberta-tiny\ntask: e2e\n"),
              HasSubstr("sweep.yaml:2: model: head \"lm\""));
}

TEST(SweepSpecErrorTest, EmptyParameterList) {
  EXPECT_THAT(ErrorOf("name: a\nmodel: roberta-tiny\ntask: polarity\n"
                      "parameters:\n  lora.rank: []\n"),
              HasSubstr("sweep.yaml:5: parameters.lora.rank: the list of "
                        "values is empty"));
}

TEST(SweepSpecErrorTest, GridLargerThanTheLimit) {
  SweepValidationOptions options = LocalValidationOptions();
  options.max_runs = 10;
  absl::StatusOr<ExpandedSweep> sweep = LoadSweep(kBase, "sweep.yaml", options);
  ASSERT_FALSE(sweep.ok());
  EXPECT_EQ(sweep.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(sweep.status().message(),
              HasSubstr("sweep.yaml:6: parameters: the grid (4 x 3"));
  EXPECT_THAT(sweep.status().message(), HasSubstr("limit of 10"));
  options.max_runs = 12;
  EXPECT_TRUE(LoadSweep(kBase, "sweep.yaml", options).ok());
  std::string random = kRandom;
  options.max_runs = 39;
  sweep = LoadSweep(random, "sweep.yaml", options);
  ASSERT_FALSE(sweep.ok());
  EXPECT_EQ(sweep.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(sweep.status().message(), HasSubstr("sweep.yaml:5: count: 40"));
}

TEST(SweepSpecErrorTest, SearchMethodMisuse) {
  const std::string head = "name: a\nmodel: roberta-tiny\ntask: polarity\n";
  EXPECT_THAT(ErrorOf(head + "count: 3\nparameters: {seed: [0]}\n"),
              HasSubstr("sweep.yaml:4: count: only used by method: random"));
  EXPECT_THAT(ErrorOf(head + "method: random\nparameters: {seed: [0]}\n"),
              HasSubstr("sweep.yaml: count: required by method: random"));
  EXPECT_THAT(ErrorOf(head + "parameters:\n  lr: {min: 1.0e-4, max: 1.0e-3}\n"),
              HasSubstr("sweep.yaml:5: parameters.lr: a range ({min, max}) "
                        "needs method: random"));
  EXPECT_THAT(ErrorOf(head + "method: random\ncount: 2\nparameters:\n"
                             "  lr: {min: 0, max: 1.0e-3, distribution: "
                             "log_uniform}\n"),
              HasSubstr("sweep.yaml:7: parameters.lr.min: log_uniform needs "
                        "min > 0"));
  EXPECT_THAT(ErrorOf(head + "method: random\ncount: 2\nparameters:\n"
                             "  lr: {min: 1.0e-3, max: 1.0e-4}\n"),
              HasSubstr("sweep.yaml:7: parameters.lr.max: expected max >= "
                        "min"));
  // A range bound the key does not accept.
  EXPECT_THAT(ErrorOf(head + "method: random\ncount: 2\nparameters:\n"
                             "  lora.rank: {min: 0, max: 8}\n"),
              HasSubstr("sweep.yaml:7: lora.rank: expected an integer >= 1"));
  EXPECT_THAT(ErrorOf(head + "method: list\nparameters: {seed: [0]}\n"),
              HasSubstr("sweep.yaml:5: parameters: not used by method: list"));
  EXPECT_THAT(ErrorOf(head + "method: list\npoints: []\n"),
              HasSubstr("sweep.yaml:5: points: expected a non-empty list"));
  EXPECT_THAT(ErrorOf(head + "method: list\npoints:\n  - {seed: 1}\n"
                             "  - {seed: 1}\n"),
              HasSubstr("two runs would train the same config"));
}

TEST(SweepSpecErrorTest, KeysASweepCannotSetPerRun) {
  const std::string head = "name: a\nmodel: roberta-tiny\ntask: polarity\n";
  EXPECT_THAT(ErrorOf(head + "fixed:\n  threads: 8\n"),
              HasSubstr("sweep.yaml:5: fixed.threads: cannot be set per run: "
                        "set resources.cpu_threads"));
  EXPECT_THAT(ErrorOf(head + "parameters:\n  output_dir: [a, b]\n"),
              HasSubstr("sweep.yaml:5: parameters.output_dir: cannot be set "
                        "per run"));
  EXPECT_THAT(ErrorOf(head + "parameters:\n  seed: [0, 1]\nfixed:\n"
                             "  seed: 3\n"),
              HasSubstr("sweep.yaml:7: fixed.seed: also swept in parameters "
                        "(line 5)"));
  EXPECT_THAT(ErrorOf(head + "seed: 3\n"),
              HasSubstr("sweep.yaml:4: seed: only used by method: random"));
}

TEST(SweepSpecErrorTest, MetricMustBeOneTheTaskReports) {
  EXPECT_THAT(ErrorOf("name: a\nmodel: roberta-tiny\ntask: polarity\n"
                      "metric: {name: val_acuracy}\n"),
              HasSubstr("sweep.yaml:4: metric.name: task polarity reports "
                        "val_accuracy, val_loss, train_loss; got "
                        "\"val_acuracy\" (did you mean val_accuracy?)"));
  absl::StatusOr<ExpandedSweep> sweep = Load(
      "name: a\nmodel: roberta-tiny\ntask: polarity\n"
      "metric: {name: val_loss}\n");
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  EXPECT_FALSE(sweep->spec.metric_maximize);
  EXPECT_EQ(sweep->runs[0].config.metric_name, "val_loss");
}

TEST(SweepSpecErrorTest, LoraTargetsMustExistInTheModel) {
  EXPECT_THAT(ErrorOf("name: a\nmodel: roberta-tiny\ntask: polarity\n"
                      "fixed:\n  lora.target_modules: [c_attn]\n"),
              HasSubstr("sweep.yaml:5: lora.target_modules:"));
}

TEST(SweepSpecErrorTest, DeeplyNestedInputIsRejectedBeforeParsing) {
  const std::string deep = "name: " + std::string(5000, '[') + "\n";
  EXPECT_THAT(ErrorOf(deep), HasSubstr("nested more than"));
}

}  // namespace
}  // namespace lora::sweep
