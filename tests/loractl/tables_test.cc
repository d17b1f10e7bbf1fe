// The results tables (loractl/tables.h) and the shaping of GetResults plus
// the runs' series into them (loractl/results_data.h), on a literal
// rank-ablation sweep: markdown as the seed writes it, exact CSV and JSON.
#include "loractl/tables.h"

#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "loractl/results_data.h"
#include "tests/loractl/results_fixture.h"

namespace lora::loractl {
namespace {

using testing::Accuracy;
using ::testing::ElementsAre;
using testing::EpochLoss;
using testing::FixtureData;
using testing::FixtureResults;
using testing::FixtureSeries;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::StepLoss;

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n');
}

TEST(ResultsDataTest, EpochRowsComeFromTheEpochTrainLossAndTheMetricCurve) {
  const ResultsData data = FixtureData();
  ASSERT_EQ(data.runs.size(), 8u);
  ASSERT_EQ(data.groups.size(), 4u);
  const RunResults& run = data.runs[2];  // rank 2, seed 0
  EXPECT_EQ(run.run_id, "run-r2s0");
  EXPECT_EQ(run.index, 2);
  ASSERT_EQ(run.epochs.size(), 3u);
  for (int epoch = 1; epoch <= 3; ++epoch) {
    const EpochRow& row = run.epochs[epoch - 1];
    EXPECT_EQ(row.epoch, epoch);
    ASSERT_TRUE(row.train_loss.has_value());
    EXPECT_DOUBLE_EQ(*row.train_loss, EpochLoss(2, 0, epoch));
    ASSERT_TRUE(row.metric.has_value());
    EXPECT_DOUBLE_EQ(*row.metric, Accuracy(2, 0, epoch));
  }
  // The loss curve is the per-step loss.
  ASSERT_EQ(run.loss_curve.size(), 12u);
  EXPECT_EQ(run.loss_curve[4].first, 5);
  EXPECT_DOUBLE_EQ(run.loss_curve[4].second, StepLoss(2, 0, 5));
  EXPECT_EQ(data.metric_name, "val_accuracy");
  EXPECT_TRUE(data.maximize);
}

TEST(ResultsDataTest, WithoutEpochTrainLossTheStepLossesAreAveraged) {
  RunSeries series = FixtureSeries();
  for (auto& [run_id, points] : series) {
    std::vector<v1::MetricPoint> kept;
    for (const v1::MetricPoint& point : points) {
      if (point.name() != "train_loss") kept.push_back(point);
    }
    points = kept;
  }
  const ResultsData data = BuildResultsData(FixtureResults(), series);
  const EpochRow& row = data.runs[0].epochs[1];  // rank 1 seed 0, epoch 2
  double sum = 0;
  for (int step = 5; step <= 8; ++step) sum += StepLoss(1, 0, step);
  ASSERT_TRUE(row.train_loss.has_value());
  EXPECT_DOUBLE_EQ(*row.train_loss, sum / 4);
}

TEST(ResultsDataTest, ALaterReportOfAStepReplacesTheEarlierOne) {
  RunSeries series = FixtureSeries();
  // A resumed attempt re-reports epoch 1's end with another value.
  v1::MetricPoint again;
  again.set_name("train_loss");
  again.set_step(4);
  again.set_epoch(1);
  again.set_value(0.123);
  series["run-r1s0"].push_back(again);
  const ResultsData data = BuildResultsData(FixtureResults(), series);
  EXPECT_DOUBLE_EQ(*data.runs[0].epochs[0].train_loss, 0.123);
}

TEST(MarkdownTest, TablesReadAsTheSeedsWithTheBestRankInBold) {
  const std::string markdown =
      RenderResults(FixtureData(), ResultsFormat::kMarkdown);
  // The per-run epoch table.
  EXPECT_THAT(markdown, HasSubstr("| Epoch | Train Loss | Val Accuracy |\n"
                                  "|---|---|---|\n"));
  EXPECT_THAT(markdown, HasSubstr(absl::StrFormat("| 1 | %.4f | %.2f%% |",
                                                  EpochLoss(1, 0, 1),
                                                  100 * Accuracy(1, 0, 1))));
  EXPECT_THAT(markdown, HasSubstr("#### #0 lora.rank=1 seed=0 (`run-r1s0`"));
  // The rank ablation: mean ± std over the two seeds, rank 8 best.
  EXPECT_THAT(markdown, HasSubstr("| Rank (r) | Val Accuracy | Runs |"));
  const ResultsData data = FixtureData();
  const AblationGroup& best = data.groups[3];
  EXPECT_THAT(markdown,
              HasSubstr(absl::StrFormat("| 8 | **%.2f%% ± %.2f%%** | 2 |",
                                        100 * best.mean, 100 * best.std)));
  const AblationGroup& first = data.groups[0];
  EXPECT_THAT(markdown,
              HasSubstr(absl::StrFormat("| 1 | %.2f%% ± %.2f%% | 2 |",
                                        100 * first.mean, 100 * first.std)));
  // Exactly one bold cell.
  size_t bold = 0;
  for (size_t at = markdown.find("**"); at != std::string::npos;
       at = markdown.find("**", at + 2)) {
    ++bold;
  }
  EXPECT_EQ(bold, 2u);
  // Trainable parameters by rank, as in the seed's table.
  EXPECT_THAT(markdown,
              HasSubstr("| Rank (r) | Trainable Parameters | % of Total "
                        "Params |\n|---|---|---|\n| 1 | 38,402 | 0.031% |\n"
                        "| 2 | 75,266 | 0.060% |\n| 4 | 148,994 | 0.119% |\n"
                        "| 8 | 296,450 | 0.237% |\n"));
}

TEST(MarkdownTest,
     OneRunShowsNoSpreadNoRunShowsADashAndMinimizeBoldsTheLowest) {
  v1::GetResultsResponse results = FixtureResults();
  results.mutable_metric()->set_name("val_loss");
  results.mutable_metric()->set_goal(v1::METRIC_GOAL_MINIMIZE);
  results.mutable_groups(0)->set_runs(1);
  results.mutable_groups(0)->set_metric_mean(0.25);
  results.mutable_groups(1)->set_runs(0);
  results.mutable_groups(2)->set_metric_mean(0.2);
  const std::string markdown =
      RenderResults(BuildResultsData(results, {}), ResultsFormat::kMarkdown,
                    ResultsTables::kAblation);
  EXPECT_THAT(markdown, HasSubstr("| 1 | 0.2500 | 1 |"));
  EXPECT_THAT(markdown, HasSubstr("| 2 | - | 0 |"));
  EXPECT_THAT(markdown, HasSubstr("| 4 | **0.2000 ± "));
  EXPECT_THAT(markdown, Not(HasSubstr("Train Loss")));
  EXPECT_THAT(markdown, Not(HasSubstr("Trainable Parameters")));
}

TEST(CsvTest, ExactValuesOneHeaderPerTableBlankLineBetween) {
  const ResultsData data = FixtureData();
  const std::string csv = RenderResults(data, ResultsFormat::kCsv);
  const std::vector<std::string> sections = absl::StrSplit(csv, "\n\n");
  ASSERT_EQ(sections.size(), 3u);

  std::vector<std::string> epochs = Lines(sections[0]);
  EXPECT_EQ(epochs[0],
            "run_id,index,lora.rank,seed,state,epoch,train_loss,val_accuracy");
  ASSERT_EQ(epochs.size(), 1u + 8 * 3);
  const std::vector<std::string> fields = absl::StrSplit(epochs[1], ',');
  ASSERT_EQ(fields.size(), 8u);
  EXPECT_EQ(fields[0], "run-r1s0");
  EXPECT_EQ(fields[2], "1");
  EXPECT_EQ(fields[5], "1");
  EXPECT_EQ(std::stod(fields[6]), EpochLoss(1, 0, 1));
  EXPECT_EQ(std::stod(fields[7]), Accuracy(1, 0, 1));

  std::vector<std::string> ablation = Lines(sections[1]);
  EXPECT_EQ(ablation[0],
            "lora.rank,runs,val_accuracy_mean,val_accuracy_std,"
            "val_accuracy_min,val_accuracy_max");
  const std::vector<std::string> row = absl::StrSplit(ablation[4], ',');
  EXPECT_EQ(row[0], "8");
  EXPECT_EQ(std::stod(row[2]), data.groups[3].mean);
  EXPECT_EQ(std::stod(row[3]), data.groups[3].std);

  std::vector<std::string> parameters = Lines(sections[2]);
  EXPECT_EQ(parameters[0],
            "lora.rank,trainable_parameters,total_parameters,"
            "trainable_percent");
  EXPECT_THAT(parameters[1], ::testing::StartsWith("1,38402,124684034,"));
}

TEST(CsvTest, OneTableAndQuotedFields) {
  v1::GetResultsResponse results = FixtureResults();
  (*results.mutable_runs(0)->mutable_parameters())["seed"].set_string_value(
      "a,\"b\"");
  const std::string csv =
      RenderResults(BuildResultsData(results, FixtureSeries()),
                    ResultsFormat::kCsv, ResultsTables::kEpochs);
  EXPECT_EQ(csv.find("\n\n"), std::string::npos);
  EXPECT_THAT(csv, HasSubstr("run-r1s0,0,1,\"a,\"\"b\"\"\",SUCCEEDED,1,"));
}

TEST(JsonTest, HoldsEveryTableWithExactValues) {
  const ResultsData data = FixtureData();
  const nlohmann::json json =
      nlohmann::json::parse(RenderResults(data, ResultsFormat::kJson));
  EXPECT_EQ(json["sweep_id"], "sw-0123456789abcdef0123");
  EXPECT_EQ(json["metric"]["name"], "val_accuracy");
  EXPECT_EQ(json["metric"]["goal"], "maximize");
  ASSERT_EQ(json["runs"].size(), 8u);
  const nlohmann::json& run = json["runs"][5];  // rank 4 seed 1
  EXPECT_EQ(run["parameters"]["lora.rank"], 4);
  EXPECT_EQ(run["parameters"]["seed"], 1);
  EXPECT_EQ(run["parameter_counts"]["trainable"], 148994);
  EXPECT_EQ(run["best_epoch"], 2);
  EXPECT_EQ(run["best_metric"].get<double>(), Accuracy(4, 1, 2));
  ASSERT_EQ(run["epochs"].size(), 3u);
  EXPECT_EQ(run["epochs"][2]["epoch"], 3);
  EXPECT_EQ(run["epochs"][2]["train_loss"].get<double>(), EpochLoss(4, 1, 3));
  EXPECT_EQ(run["epochs"][2]["val_accuracy"].get<double>(), Accuracy(4, 1, 3));
  ASSERT_EQ(json["ablation"].size(), 4u);
  EXPECT_EQ(json["ablation"][1]["value"], 2);
  EXPECT_EQ(json["ablation"][1]["runs"], 2);
  EXPECT_EQ(json["ablation"][1]["mean"].get<double>(), data.groups[1].mean);
  EXPECT_EQ(json["parameters"][3]["trainable_parameters"], 296450);

  const nlohmann::json only = ResultsJson(data, ResultsTables::kParameters);
  EXPECT_FALSE(only.contains("runs"));
  EXPECT_FALSE(only.contains("ablation"));
  EXPECT_TRUE(only.contains("parameters"));
}

TEST(TextTest, AlignedTablesWithPercentages) {
  const std::string text = RenderResults(FixtureData(), ResultsFormat::kTable);
  EXPECT_THAT(text, HasSubstr("sweep sw-0123456789abcdef0123 "
                              "(roberta-sst2-rank-ablation): SUCCEEDED, 8 "
                              "runs, metric val_accuracy (maximize)"));
  EXPECT_THAT(text, HasSubstr("RANK (R)   TRAINABLE PARAMETERS"));
  EXPECT_THAT(text, HasSubstr("296,450"));
  EXPECT_THAT(text,
              HasSubstr(absl::StrFormat("%.2f%%", 100 * Accuracy(8, 1, 3))));
}

TEST(ParseTest, FormatsAndTables) {
  EXPECT_EQ(*ParseResultsFormat("markdown"), ResultsFormat::kMarkdown);
  EXPECT_FALSE(ParseResultsFormat("html").ok());
  EXPECT_EQ(*ParseResultsTables("ablation"), ResultsTables::kAblation);
  EXPECT_FALSE(ParseResultsTables("ranks").ok());
}

}  // namespace
}  // namespace lora::loractl
