#include "tests/loractl/results_fixture.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace lora::loractl::testing {
namespace {

std::string RunId(int rank, int seed) {
  return absl::StrCat("run-r", rank, "s", seed);
}

v1::MetricPoint Point(const std::string& name, int64_t step, int epoch,
                      double value) {
  v1::MetricPoint point;
  point.set_name(name);
  point.set_step(step);
  point.set_epoch(epoch);
  point.set_value(value);
  return point;
}

}  // namespace

double Accuracy(int rank, int seed, int epoch) {
  static const double kBump[] = {0, 0.0, 0.02, 0.01};
  return 0.90 + 0.005 * std::log2(rank) + 0.004 * seed + kBump[epoch];
}

double EpochLoss(int rank, int seed, int epoch) {
  return 0.5 / epoch + 0.01 * rank + 0.001 * seed;
}

double StepLoss(int rank, int seed, int step) {
  return 0.6 / step + 0.01 * rank + 0.001 * seed;
}

int64_t Trainable(int rank) { return 36864 * rank + 1538; }

v1::GetResultsResponse FixtureResults() {
  v1::GetResultsResponse results;
  v1::Sweep& sweep = *results.mutable_sweep();
  sweep.set_sweep_id("sw-0123456789abcdef0123");
  sweep.set_name("roberta-sst2-rank-ablation");
  sweep.set_state(v1::SWEEP_STATE_SUCCEEDED);
  sweep.set_total_runs(8);
  results.mutable_metric()->set_name("val_accuracy");
  results.mutable_metric()->set_goal(v1::METRIC_GOAL_MAXIMIZE);
  *sweep.mutable_metric() = results.metric();
  results.set_group_by("lora.rank");
  for (int rank : kRanks) {
    std::vector<double> bests;
    for (int seed = 0; seed < kSeeds; ++seed) {
      v1::RunResult& run = *results.add_runs();
      run.set_run_id(RunId(rank, seed));
      (*run.mutable_parameters())["lora.rank"].set_number_value(rank);
      (*run.mutable_parameters())["seed"].set_number_value(seed);
      run.set_state(v1::RUN_STATE_SUCCEEDED);
      run.set_best_metric(Accuracy(rank, seed, 2));
      run.set_best_epoch(2);
      bests.push_back(Accuracy(rank, seed, 2));
      v1::ParameterCounts& counts = *run.mutable_parameter_counts();
      counts.set_base(124645632);
      counts.set_lora(36864 * rank);
      counts.set_head(1538);
      counts.set_trainable(Trainable(rank));
      counts.set_total(124645632 + Trainable(rank));
      for (int epoch = 1; epoch <= kEpochs; ++epoch) {
        *run.add_metric_curve() = Point("val_accuracy", epoch * kStepsPerEpoch,
                                        epoch, Accuracy(rank, seed, epoch));
      }
    }
    v1::ResultGroup& group = *results.add_groups();
    group.mutable_value()->set_number_value(rank);
    group.set_runs(kSeeds);
    const double mean = (bests[0] + bests[1]) / 2;
    group.set_metric_mean(mean);
    group.set_metric_std(std::sqrt((bests[0] - mean) * (bests[0] - mean) +
                                   (bests[1] - mean) * (bests[1] - mean)));
    group.set_metric_min(std::min(bests[0], bests[1]));
    group.set_metric_max(std::max(bests[0], bests[1]));
    group.set_trainable_parameters(Trainable(rank));
    group.set_total_parameters(124645632 + Trainable(rank));
    group.set_trainable_percent(100.0 * Trainable(rank) /
                                (124645632 + Trainable(rank)));
  }
  return results;
}

RunSeries FixtureSeries() {
  RunSeries series;
  for (int rank : kRanks) {
    for (int seed = 0; seed < kSeeds; ++seed) {
      std::vector<v1::MetricPoint>& points = series[RunId(rank, seed)];
      for (int epoch = 1; epoch <= kEpochs; ++epoch) {
        for (int i = 1; i <= kStepsPerEpoch; ++i) {
          const int step = (epoch - 1) * kStepsPerEpoch + i;
          points.push_back(
              Point("loss", step, epoch, StepLoss(rank, seed, step)));
        }
        points.push_back(Point("train_loss", epoch * kStepsPerEpoch, epoch,
                               EpochLoss(rank, seed, epoch)));
        points.push_back(Point("val_accuracy", epoch * kStepsPerEpoch, epoch,
                               Accuracy(rank, seed, epoch)));
      }
    }
  }
  return series;
}

ResultsData FixtureData() {
  return BuildResultsData(FixtureResults(), FixtureSeries());
}

}  // namespace lora::loractl::testing
