// A worker's part played by the test, for loractl's end-to-end tests: lease
// a run, report what training would (per-step "loss", the epoch's
// "train_loss" and "val_accuracy" at every epoch end, as lora-worker maps
// lora-train's metrics.jsonl), upload an adapter folder and finish the run.
// Values are deterministic functions of (rank, seed, step or epoch), so
// tests know what the store must hold.
#ifndef LORA_SWEEP_TESTS_LORACTL_FAKE_TRAINING_H_
#define LORA_SWEEP_TESTS_LORACTL_FAKE_TRAINING_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lora/v1/worker_service.grpc.pb.h"
#include "tests/integration/test_clients.h"

namespace lora::loractl::testing {

inline constexpr int kStepsPerEpoch = 4;

double StepLoss(int rank, int seed, int64_t step);
double EpochTrainLoss(int rank, int seed, int epoch);
// Peaks at epoch 2, so a run's best is not its last value.
double Accuracy(int rank, int seed, int epoch);

int RankOf(const v1::Job& job);
int SeedOf(const v1::Job& job);

// Long-polls until a job is leased or `wait` passes (NotFound then).
absl::StatusOr<v1::Job> LeaseJob(integration::TestWorker* worker,
                                 absl::Duration wait = absl::Seconds(20));

// Reports epochs [first, last] of `job` on one ReportProgress stream, one
// batch per epoch (batch sequence = epoch), pausing `pause` before each.
// Errors when a batch is not acknowledged or the run is told to stop
// (Cancelled).
absl::Status ReportEpochs(integration::TestWorker* worker, const v1::Job& job,
                          int first, int last,
                          absl::Duration pause = absl::ZeroDuration());

// Writes an adapter folder for the job under `root` (adapter_config.json,
// adapter_model.safetensors with bytes that depend on the run) and returns
// its path.
std::string WriteAdapterFolder(const v1::Job& job, const std::string& root);

// Uploads `adapter_dir` (if not empty) as the run's ADAPTER artifact and
// finishes the run SUCCEEDED with its best accuracy over `epochs`. Returns
// the adapter's artifact id ("" without one).
absl::StatusOr<std::string> FinishWithAdapter(integration::TestWorker* worker,
                                              const v1::Job& job, int epochs,
                                              const std::string& adapter_dir);

}  // namespace lora::loractl::testing

#endif  // LORA_SWEEP_TESTS_LORACTL_FAKE_TRAINING_H_
