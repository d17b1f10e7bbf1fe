#include "tests/loractl/fake_training.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/integration/lorad_process.h"

namespace lora::loractl::testing {

using integration::Batch;
using integration::Point;
using integration::PrepareContext;
using integration::ProgressStream;
using integration::TestWorker;

double StepLoss(int rank, int seed, int64_t step) {
  return 0.7 / static_cast<double>(step) + 0.01 * rank + 0.002 * seed;
}

double EpochTrainLoss(int rank, int seed, int epoch) {
  return 0.45 / epoch + 0.01 * rank + 0.002 * seed;
}

double Accuracy(int rank, int seed, int epoch) {
  static const double kBump[] = {0, 0.0, 0.03, 0.02, 0.01, 0.0};
  return 0.88 + 0.01 * std::log2(rank) + 0.004 * seed + kBump[epoch % 6];
}

int RankOf(const v1::Job& job) { return job.run().config().lora().rank(); }
int SeedOf(const v1::Job& job) {
  return static_cast<int>(job.run().config().seed());
}

absl::StatusOr<v1::Job> LeaseJob(TestWorker* worker, absl::Duration wait) {
  const absl::Time give_up = absl::Now() + wait;
  while (absl::Now() < give_up) {
    v1::AcquireJobResponse reply;
    grpc::Status status = worker->Acquire(absl::Milliseconds(500), &reply);
    if (!status.ok()) {
      return absl::UnavailableError("AcquireJob: " + status.error_message());
    }
    if (reply.has_job()) return reply.job();
  }
  return absl::NotFoundError("no job was leased in time");
}

absl::Status ReportEpochs(TestWorker* worker, const v1::Job& job, int first,
                          int last, absl::Duration pause) {
  const int rank = RankOf(job);
  const int seed = SeedOf(job);
  std::unique_ptr<ProgressStream> stream = worker->OpenProgress();
  for (int epoch = first; epoch <= last; ++epoch) {
    absl::SleepFor(pause);
    std::vector<v1::MetricPoint> points;
    for (int i = 1; i <= kStepsPerEpoch; ++i) {
      const int64_t step = (epoch - 1) * kStepsPerEpoch + i;
      points.push_back(Point("loss", step, epoch, StepLoss(rank, seed, step)));
    }
    const int64_t end = int64_t{epoch} * kStepsPerEpoch;
    points.push_back(
        Point("train_loss", end, epoch, EpochTrainLoss(rank, seed, epoch)));
    points.push_back(
        Point("val_accuracy", end, epoch, Accuracy(rank, seed, epoch)));
    v1::ProgressBatch batch = Batch(job, epoch, points);
    if (epoch == 1) {
      *batch.mutable_measured_parameter_counts() = job.run().parameter_counts();
    }
    v1::ProgressAck ack;
    if (!stream->Send(batch, &ack)) {
      return absl::UnavailableError(absl::StrCat(
          job.run().run_id(),
          ": progress stream broke: ", stream->Close().error_message()));
    }
    if (ack.stop()) {
      (void)stream->Close();
      return absl::CancelledError(absl::StrCat(
          job.run().run_id(), ": told to stop: ", ack.stop_reason()));
    }
    if (ack.acked_sequence() != epoch) {
      return absl::InternalError(absl::StrCat(job.run().run_id(), ": ack ",
                                              ack.acked_sequence(),
                                              " for batch ", epoch));
    }
  }
  grpc::Status closed = stream->Close();
  if (!closed.ok()) {
    return absl::UnavailableError("progress stream: " + closed.error_message());
  }
  return absl::OkStatus();
}

std::string WriteAdapterFolder(const v1::Job& job, const std::string& root) {
  const std::string dir = absl::StrCat(root, "/", job.run().run_id());
  std::filesystem::create_directories(dir + "/extra");
  std::ofstream(dir + "/adapter_config.json")
      << "{\"peft_type\": \"LORA\", \"r\": " << RankOf(job)
      << ", \"lora_alpha\": 16, \"target_modules\": [\"query\", \"value\"]}\n";
  std::string weights;
  for (int i = 0; i < 5000 + 97 * RankOf(job) + SeedOf(job); ++i) {
    weights.push_back(static_cast<char>((i * 31 + RankOf(job)) & 0xff));
  }
  std::ofstream(dir + "/adapter_model.safetensors", std::ios::binary)
      << weights;
  std::ofstream(dir + "/extra/lora_sweep_run.yaml")
      << "run: " << job.run().run_id() << "\n";
  return dir;
}

absl::StatusOr<std::string> FinishWithAdapter(TestWorker* worker,
                                              const v1::Job& job, int epochs,
                                              const std::string& adapter_dir) {
  std::string adapter_id;
  if (!adapter_dir.empty()) {
    absl::StatusOr<v1::UploadArtifactResponse> uploaded = worker->UploadFolder(
        adapter_dir, v1::ARTIFACT_KIND_ADAPTER, job.run().run_id());
    if (!uploaded.ok()) return uploaded.status();
    adapter_id = uploaded->artifact().artifact_id();
  }
  const int rank = RankOf(job);
  const int seed = SeedOf(job);
  double best = -1;
  int best_epoch = 0;
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    if (Accuracy(rank, seed, epoch) > best) {
      best = Accuracy(rank, seed, epoch);
      best_epoch = epoch;
    }
  }
  v1::FinishRunRequest request;
  request.set_run_id(job.run().run_id());
  request.set_attempt(job.attempt());
  request.set_lease_id(job.lease_id());
  request.set_outcome(v1::RUN_OUTCOME_SUCCEEDED);
  request.set_best_metric(best);
  request.set_best_epoch(best_epoch);
  request.set_adapter_artifact_id(adapter_id);
  (*request.mutable_final_metrics())["val_accuracy"] =
      Accuracy(rank, seed, epochs);
  grpc::ClientContext context;
  PrepareContext(&context, worker->token());
  v1::FinishRunResponse reply;
  grpc::Status status = worker->stub()->FinishRun(&context, request, &reply);
  if (!status.ok()) {
    return absl::UnavailableError("FinishRun: " + status.error_message());
  }
  if (reply.state() != v1::RUN_STATE_SUCCEEDED) {
    return absl::InternalError(absl::StrCat("FinishRun left the run ",
                                            v1::RunState_Name(reply.state())));
  }
  return adapter_id;
}

}  // namespace lora::loractl::testing
