// The live /metrics of a real lorad that has served a sweep passes
// `promtool check metrics` (Prometheus's own parser and linter) and says
// what happened: runs by state, ingested points, and the ablation gauges per
// rank. promtool comes from the Debian package prometheus (set-up script); a
// missing promtool fails the test rather than skipping it.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <httplib.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/lorad_process.h"
#include "tests/integration/test_clients.h"

namespace lora::integration {
namespace {

const char kSweep[] = R"(name: metrics-ablation
model: roberta-tiny
task: polarity
parameters:
  lora.rank: [1, 2, 4]
  seed: [0, 1]
fixed: {epochs: 2}
max_attempts: 1
)";

// A second sweep nobody works on: its runs stay PENDING.
const char kQueuedSweep[] = R"(name: metrics-queued
model: roberta-tiny
task: polarity
parameters:
  seed: [0, 1]
priority: -1
)";

constexpr char kPromtool[] = "/usr/bin/promtool";

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    result.output.append(buffer, n);
  }
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// Sample lines of an exposition: "name{labels}" -> value.
std::map<std::string, double> Samples(const std::string& exposition) {
  std::map<std::string, double> samples;
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    if (space == absl::string_view::npos) continue;
    samples[std::string(line.substr(0, space))] =
        std::strtod(std::string(line.substr(space + 1)).c_str(), nullptr);
  }
  return samples;
}

class MetricsExpositionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LoradOptions options;
    options.dir = FreshTestDir("metrics_exposition");
    options.heartbeat_interval = "200ms";
    options.lease_ttl = "10s";
    absl::StatusOr<std::unique_ptr<LoradProcess>> lorad =
        LoradProcess::Start(options);
    ASSERT_TRUE(lorad.ok()) << lorad.status();
    lorad_ = std::move(*lorad);
    sweeps_ = lorad_->SweepStub();
  }

  void TearDown() override {
    // Clients first: lorad's shutdown waits (up to 5 s) for connected
    // clients to go away.
    sweeps_.reset();
    if (lorad_ != nullptr) {
      absl::Status stopped = lorad_->Stop();
      EXPECT_TRUE(stopped.ok()) << stopped;
    }
  }

  std::string Fetch(const std::string& path, int* status) {
    httplib::Client client("127.0.0.1", lorad_->http_port());
    client.set_connection_timeout(5);
    client.set_read_timeout(10);
    httplib::Result result = client.Get(path.c_str());
    if (!result) {
      ADD_FAILURE() << path << ": " << httplib::to_string(result.error());
      *status = -1;
      return "";
    }
    *status = result->status;
    return result->body;
  }

  std::unique_ptr<LoradProcess> lorad_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
};

TEST_F(MetricsExpositionTest, LiveExpositionPassesPromtoolAndTellsTheSweep) {
  ASSERT_EQ(::access(kPromtool, X_OK), 0)
      << kPromtool << " is missing: install the Debian package prometheus";
  v1::SubmitSweepResponse submitted;
  ASSERT_TRUE(SubmitYaml(sweeps_.get(), kSweep, &submitted).ok());
  ASSERT_EQ(submitted.runs_size(), 6);
  const std::string sweep_id = submitted.sweep().sweep_id();
  v1::SubmitSweepResponse queued;
  ASSERT_TRUE(SubmitYaml(sweeps_.get(), kQueuedSweep, &queued).ok());
  ASSERT_EQ(queued.runs_size(), 2);

  // Every run reports two epochs; the first leased fails, the rest succeed.
  TestWorker worker(lorad_->NewChannel(), "metrics-worker");
  ASSERT_TRUE(worker.Register().ok());
  std::map<int, std::vector<double>> best_by_rank;
  std::map<int, std::vector<double>> loss_by_rank;
  int points = 0;
  for (int i = 0; i < 6; ++i) {
    v1::AcquireJobResponse acquired;
    ASSERT_TRUE(worker.Acquire(absl::Seconds(5), &acquired).ok());
    ASSERT_TRUE(acquired.has_job());
    const v1::Job& job = acquired.job();
    ASSERT_EQ(job.run().sweep_id(), sweep_id);
    const int rank = job.run().config().lora().rank();
    const double seed = static_cast<double>(job.run().config().seed());
    std::unique_ptr<ProgressStream> stream = worker.OpenProgress();
    const double accuracy[] = {0.55 + 0.01 * rank + 0.002 * seed,
                               0.6 + 0.01 * rank + 0.002 * seed};
    const double loss[] = {0.8 - 0.01 * rank, 0.6 - 0.01 * rank - 0.01 * seed};
    for (int epoch = 1; epoch <= 2; ++epoch) {
      v1::ProgressAck ack;
      ASSERT_TRUE(stream->Send(
          Batch(
              job, epoch,
              {Point("train_loss", 10 * epoch, epoch, loss[epoch - 1]),
               Point("val_accuracy", 10 * epoch, epoch, accuracy[epoch - 1])}),
          &ack));
      ASSERT_EQ(ack.acked_sequence(), epoch);
      points += 2;
    }
    ASSERT_TRUE(stream->Close().ok());
    best_by_rank[rank].push_back(accuracy[1]);
    loss_by_rank[rank].push_back(loss[1]);
    v1::FinishRunResponse finished;
    ASSERT_TRUE(
        worker
            .Finish(job,
                    i == 0 ? v1::RUN_OUTCOME_FAILED : v1::RUN_OUTCOME_SUCCEEDED,
                    &finished, i == 0 ? "out of memory" : "")
            .ok());
  }
  ASSERT_TRUE(
      WaitForSweepState(sweeps_.get(), sweep_id, v1::SWEEP_STATE_FAILED).ok());

  int status = 0;
  const std::string exposition = Fetch("/metrics", &status);
  ASSERT_EQ(status, 200);
  const std::string path =
      absl::StrCat(std::getenv("TEST_TMPDIR"), "/metrics.txt");
  {
    std::ofstream file(path, std::ios::binary);
    file << exposition;
    ASSERT_TRUE(file.good());
  }
  const CommandResult check =
      RunCommand(absl::StrCat(kPromtool, " check metrics < '", path, "' 2>&1"));
  EXPECT_EQ(check.exit_code, 0) << check.output << "\n--- exposition:\n"
                                << exposition;

  const std::map<std::string, double> samples = Samples(exposition);
  auto value = [&samples](const std::string& series) -> double {
    auto found = samples.find(series);
    if (found == samples.end()) {
      ADD_FAILURE() << "no sample " << series;
      return std::nan("");
    }
    return found->second;
  };
  EXPECT_EQ(value(R"(lora_runs{state="SUCCEEDED"})"), 5);
  EXPECT_EQ(value(R"(lora_runs{state="FAILED"})"), 1);
  EXPECT_EQ(value(R"(lora_runs{state="PENDING"})"), 2);
  EXPECT_EQ(value(R"(lora_runs{state="RUNNING"})"), 0);
  EXPECT_EQ(
      value(R"(lora_sweep_runs{sweep="metrics-ablation",state="SUCCEEDED"})"),
      5);
  EXPECT_EQ(value(R"(lora_sweep_runs{sweep="metrics-queued",state="PENDING"})"),
            2);
  EXPECT_EQ(value("lora_queue_depth"), 2);
  EXPECT_EQ(value("lora_workers_connected"), 1);
  EXPECT_EQ(value("lora_metric_points_ingested_total"), points);
  EXPECT_EQ(value("lora_dispatch_latency_seconds_count"), 6);

  // The ablation gauges, one series per rank, matching GetResults.
  v1::GetResultsRequest request;
  request.set_sweep_id(sweep_id);
  v1::GetResultsResponse results;
  grpc::ClientContext context;
  PrepareContext(&context, "");
  ASSERT_TRUE(sweeps_->GetResults(&context, request, &results).ok());
  ASSERT_EQ(results.groups_size(), 3);
  std::map<std::string, double> trainable_by_rank;
  std::map<std::string, std::map<std::string, double>> best_stats;
  std::map<std::string, std::map<std::string, double>> loss_stats;
  for (const auto& [series, sample] : samples) {
    std::string rank;
    for (absl::string_view label :
         absl::StrSplit(series.substr(series.find('{') + 1), ',')) {
      if (absl::StartsWith(label, "rank=\"")) {
        rank = std::string(label.substr(6, label.size() - 7));
      }
    }
    if (!absl::StrContains(series, R"(sweep="metrics-ablation")")) continue;
    if (!absl::StrContains(series, R"(model="roberta-tiny")")) continue;
    const std::string stat =
        absl::StrContains(series, R"(stat="mean")")  ? "mean"
        : absl::StrContains(series, R"(stat="max")") ? "max"
                                                     : "";
    if (absl::StartsWith(series, "lora_sweep_trainable_parameters{")) {
      EXPECT_TRUE(trainable_by_rank.emplace(rank, sample).second) << series;
    } else if (absl::StartsWith(series, "lora_sweep_best_metric{")) {
      best_stats[rank][stat] = sample;
    } else if (absl::StartsWith(series, "lora_sweep_latest_loss{")) {
      loss_stats[rank][stat] = sample;
    }
  }
  ASSERT_EQ(trainable_by_rank.size(), 3u) << exposition;
  for (const v1::ResultGroup& group : results.groups()) {
    const int rank = static_cast<int>(group.value().number_value());
    const std::string label = std::to_string(rank);
    SCOPED_TRACE(label);
    EXPECT_EQ(trainable_by_rank[label],
              static_cast<double>(group.trainable_parameters()));
    const std::vector<double>& best = best_by_rank[rank];
    const std::vector<double>& loss = loss_by_rank[rank];
    ASSERT_EQ(best.size(), 2u);
    EXPECT_NEAR(best_stats[label]["mean"], (best[0] + best[1]) / 2, 1e-9);
    EXPECT_NEAR(best_stats[label]["max"], std::max(best[0], best[1]), 1e-9);
    EXPECT_NEAR(loss_stats[label]["mean"], (loss[0] + loss[1]) / 2, 1e-9);
    EXPECT_NEAR(loss_stats[label]["max"], std::max(loss[0], loss[1]), 1e-9);
  }

  EXPECT_EQ(Fetch("/healthz", &status), "ok\n");
  EXPECT_EQ(status, 200);
  Fetch("/readyz", &status);
  EXPECT_EQ(status, 200);
}

}  // namespace
}  // namespace lora::integration
