// A literal rank-ablation sweep's results for loractl's table and plot
// tests: roberta-base parameter counts, ranks 1, 2, 4, 8 with two seeds,
// three epochs, per-step "loss" and per-epoch "train_loss" points.
#ifndef LORA_SWEEP_TESTS_LORACTL_RESULTS_FIXTURE_H_
#define LORA_SWEEP_TESTS_LORACTL_RESULTS_FIXTURE_H_

#include "lora/v1/sweep_service.pb.h"
#include "loractl/results_data.h"

namespace lora::loractl::testing {

inline constexpr int kRanks[] = {1, 2, 4, 8};
inline constexpr int kSeeds = 2;
inline constexpr int kEpochs = 3;
inline constexpr int kStepsPerEpoch = 4;

// Validation accuracy of (rank, seed) at an epoch; best at epoch 2.
double Accuracy(int rank, int seed, int epoch);
// The epoch-mean train loss and the per-step loss.
double EpochLoss(int rank, int seed, int epoch);
double StepLoss(int rank, int seed, int step);
// The seed's trainable counts: 36,864 r + 1,538.
int64_t Trainable(int rank);

// GetResults as lorad answers it for the sweep (groups computed here).
v1::GetResultsResponse FixtureResults();
// The runs' series as a WatchSweep replay delivers them.
RunSeries FixtureSeries();
ResultsData FixtureData();

}  // namespace lora::loractl::testing

#endif  // LORA_SWEEP_TESTS_LORACTL_RESULTS_FIXTURE_H_
