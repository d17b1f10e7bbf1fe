// loractl end to end, run as a user would (a child process, its stdout,
// stderr and exit status) against a real lorad, with the worker played by
// the test: submit, watch (piped), results in every format checked against
// the store, plot, artifacts get, the listing commands, and cancel.
#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "loractl/commands.h"
#include "loractl/output.h"
#include "tests/integration/lorad_process.h"
#include "tests/integration/test_clients.h"
#include "tests/loractl/e2e_fixture.h"
#include "tests/loractl/fake_training.h"
#include "tests/loractl/xml_check.h"

namespace lora::loractl::testing {
namespace {

using integration::PrepareContext;
using integration::TestWorker;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr int kEpochs = 3;
constexpr int kRanks[] = {1, 2, 4, 8};
constexpr int kSeeds = 2;

const char kSweep[] = R"(# The seed's rank ablation in miniature.
name: rank-ablation
model: roberta-tiny
task: polarity
parameters:
  lora.rank: [1, 2, 4, 8]
  seed: [0, 1]
fixed:
  lora.target_modules: [query, value]
  lora.alpha: 16
  epochs: 3
  batch_size: 8
metric: {name: val_accuracy, goal: maximize}
)";

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

std::string Percent(double value) {
  return absl::StrFormat("%.2f%%", 100 * value);
}

double Best(int rank, int seed) {
  double best = 0;
  for (int epoch = 1; epoch <= kEpochs; ++epoch) {
    best = std::max(best, Accuracy(rank, seed, epoch));
  }
  return best;
}

class LoractlWorkflowTest : public LoractlE2eTest {
 protected:
  v1::GetResultsResponse StoreResults(const std::string& sweep_id) {
    grpc::ClientContext context;
    PrepareContext(&context, "");
    v1::GetResultsRequest request;
    request.set_sweep_id(sweep_id);
    v1::GetResultsResponse response;
    grpc::Status status = sweeps_->GetResults(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // (run, epoch) -> value of `name` at the epoch's end, from a replay of
  // the store's events.
  std::map<std::pair<std::string, int>, double> StoreEpochValues(
      const std::string& sweep_id, const std::string& name) {
    integration::WatchResult replay =
        integration::WatchToEnd(sweeps_.get(), sweep_id, 0, true);
    EXPECT_TRUE(replay.status.ok()) << replay.status.error_message();
    std::map<std::pair<std::string, int>, double> values;
    for (const v1::SweepEvent& event : replay.events) {
      if (event.has_metric() && event.metric().point().name() == name) {
        values[{event.metric().run_id(), event.metric().point().epoch()}] =
            event.metric().point().value();
      }
    }
    return values;
  }
};

TEST_F(LoractlWorkflowTest, SubmitWatchResultsPlotAndDownload) {
  const std::string file = WriteFile("sweep.yaml", kSweep);

  // --- submit ---
  const LoractlResult submitted = Run({"submit", file});
  ASSERT_EQ(submitted.exit_code, 0) << Describe({"submit", file}, submitted);
  const std::string sweep_id = SweepIdOf(submitted.out);
  ASSERT_FALSE(sweep_id.empty()) << submitted.out;
  EXPECT_THAT(submitted.out, HasSubstr("sweep " + sweep_id + " submitted"));
  absl::StatusOr<std::vector<v1::Run>> runs =
      integration::ListAllRuns(sweeps_.get(), sweep_id, 100);
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 8u);
  // One line per run with its total, trainable and LoRA counts as stored.
  for (const v1::Run& run : *runs) {
    bool found = false;
    for (const std::string& line : Lines(submitted.out)) {
      if (line.find(run.run_id()) == std::string::npos) continue;
      found = true;
      EXPECT_THAT(line, HasSubstr(Commas(run.parameter_counts().total())));
      EXPECT_THAT(line, HasSubstr(Commas(run.parameter_counts().trainable())));
      EXPECT_THAT(line, HasSubstr(Commas(run.parameter_counts().lora())));
      EXPECT_THAT(
          line, HasSubstr(absl::StrCat("lora.rank=", run.config().lora().rank(),
                                       " seed=", run.config().seed())));
    }
    EXPECT_TRUE(found) << run.run_id();
  }

  // --- watch (piped), started before any work ---
  absl::StatusOr<std::unique_ptr<LoractlProcess>> watch =
      Start({"watch", sweep_id});
  ASSERT_TRUE(watch.ok()) << watch.status();

  // --- the worker ---
  TestWorker worker(lorad_->NewChannel(), "fake-worker");
  ASSERT_TRUE(worker.Register().ok());
  std::map<std::string, std::string> adapter_dirs;  // run id -> folder
  std::map<std::string, std::string> adapter_ids;   // run id -> artifact
  std::map<std::string, std::pair<int, int>> rank_seed;
  for (int i = 0; i < 8; ++i) {
    absl::StatusOr<v1::Job> job = LeaseJob(&worker);
    ASSERT_TRUE(job.ok()) << job.status();
    const std::string run_id = job->run().run_id();
    rank_seed[run_id] = {RankOf(*job), SeedOf(*job)};
    ASSERT_TRUE(
        ReportEpochs(&worker, *job, 1, kEpochs, absl::Milliseconds(30)).ok());
    adapter_dirs[run_id] = WriteAdapterFolder(*job, dir_ + "/adapters");
    absl::StatusOr<std::string> adapter =
        FinishWithAdapter(&worker, *job, kEpochs, adapter_dirs[run_id]);
    ASSERT_TRUE(adapter.ok()) << adapter.status();
    adapter_ids[run_id] = *adapter;
  }

  const LoractlResult watched = (*watch)->Wait(absl::Seconds(60));
  ASSERT_EQ(watched.exit_code, 0) << Describe({"watch", sweep_id}, watched);
  const std::vector<std::string> lines = Lines(watched.out);
  ASSERT_GE(lines.size(), 10u) << watched.out;
  EXPECT_THAT(lines.front(),
              HasSubstr("watching sweep " + sweep_id + " (rank-ablation)"));
  EXPECT_EQ(lines.back(),
            "sweep " + sweep_id + " ended SUCCEEDED: 8/8 done: 8 succeeded");
  EXPECT_THAT(watched.out, Not(HasSubstr("\x1b[")));  // no redraws in a pipe
  for (const v1::Run& run : *runs) {
    const auto [rank, seed] = rank_seed[run.run_id()];
    const std::string label =
        absl::StrCat("#", run.index(), " lora.rank=", rank, " seed=", seed);
    SCOPED_TRACE(label);
    // One line per evaluation, with the best so far, and a final one.
    for (int epoch = 1; epoch <= kEpochs; ++epoch) {
      double best = 0;
      for (int e = 1; e <= epoch; ++e) {
        best = std::max(best, Accuracy(rank, seed, e));
      }
      bool seen = false;
      for (const std::string& line : lines) {
        seen = seen || (absl::StartsWith(line, label + " ") &&
                        line.find(absl::StrCat("epoch ", epoch, "/3")) !=
                            std::string::npos &&
                        line.find("best val_accuracy " + Percent(best)) !=
                            std::string::npos);
      }
      EXPECT_TRUE(seen) << "epoch " << epoch << "\n" << watched.out;
    }
    bool done = false;
    for (const std::string& line : lines) {
      done =
          done ||
          (absl::StartsWith(line, label + " ") &&
           line.find("[####################] 100%") != std::string::npos &&
           line.find(absl::StrFormat("loss %.4f", StepLoss(rank, seed, 12))) !=
               std::string::npos &&
           absl::EndsWith(line, "SUCCEEDED"));
    }
    EXPECT_TRUE(done) << watched.out;
  }

  // --- results, checked against the store ---
  const v1::GetResultsResponse store = StoreResults(sweep_id);
  ASSERT_EQ(store.groups_size(), 4);
  const auto store_losses = StoreEpochValues(sweep_id, "train_loss");
  const auto store_accuracy = StoreEpochValues(sweep_id, "val_accuracy");
  ASSERT_EQ(store_losses.size(), 24u);

  const LoractlResult json = Run({"results", sweep_id, "--format", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const nlohmann::json results = nlohmann::json::parse(json.out);
  EXPECT_EQ(results["sweep_id"], sweep_id);
  ASSERT_EQ(results["runs"].size(), 8u);
  for (const nlohmann::json& run : results["runs"]) {
    const std::string run_id = run["run_id"];
    const auto [rank, seed] = rank_seed[run_id];
    EXPECT_EQ(run["parameters"]["lora.rank"], rank);
    EXPECT_EQ(run["best_metric"].get<double>(), Best(rank, seed));
    ASSERT_EQ(run["epochs"].size(), 3u) << run_id;
    for (const nlohmann::json& row : run["epochs"]) {
      const int epoch = row["epoch"];
      EXPECT_EQ(row["train_loss"].get<double>(),
                store_losses.at({run_id, epoch}));
      EXPECT_EQ(row["train_loss"].get<double>(),
                EpochTrainLoss(rank, seed, epoch));
      EXPECT_EQ(row["val_accuracy"].get<double>(),
                store_accuracy.at({run_id, epoch}));
    }
  }
  ASSERT_EQ(results["ablation"].size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const v1::ResultGroup& group = store.groups(i);
    const nlohmann::json& row = results["ablation"][i];
    EXPECT_EQ(row["value"], kRanks[i]);
    EXPECT_EQ(row["runs"], kSeeds);
    EXPECT_EQ(row["mean"].get<double>(), group.metric_mean());
    EXPECT_EQ(row["std"].get<double>(), group.metric_std());
    EXPECT_EQ(results["parameters"][i]["trainable_parameters"],
              group.trainable_parameters());
    EXPECT_EQ(results["parameters"][i]["total_parameters"],
              group.total_parameters());
  }

  const LoractlResult csv = Run({"results", sweep_id, "--format", "csv"});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  const std::vector<std::string> sections = absl::StrSplit(csv.out, "\n\n");
  ASSERT_EQ(sections.size(), 3u) << csv.out;
  const std::vector<std::string> epoch_rows = Lines(sections[0]);
  ASSERT_EQ(epoch_rows.size(), 25u);
  EXPECT_EQ(epoch_rows[0],
            "run_id,index,lora.rank,seed,state,epoch,train_loss,val_accuracy");
  for (size_t i = 1; i < epoch_rows.size(); ++i) {
    const std::vector<std::string> f = absl::StrSplit(epoch_rows[i], ',');
    ASSERT_EQ(f.size(), 8u) << epoch_rows[i];
    const int epoch = std::stoi(f[5]);
    EXPECT_EQ(std::stod(f[6]), store_losses.at({f[0], epoch}));
    EXPECT_EQ(std::stod(f[7]), store_accuracy.at({f[0], epoch}));
  }
  const std::vector<std::string> ablation_rows = Lines(sections[1]);
  ASSERT_EQ(ablation_rows.size(), 5u);
  for (int i = 0; i < 4; ++i) {
    const std::vector<std::string> f =
        absl::StrSplit(ablation_rows[i + 1], ',');
    EXPECT_EQ(std::stoi(f[0]), kRanks[i]);
    EXPECT_EQ(std::stod(f[2]), store.groups(i).metric_mean());
    EXPECT_EQ(std::stod(f[3]), store.groups(i).metric_std());
  }

  const LoractlResult markdown =
      Run({"results", sweep_id, "--format", "markdown"});
  ASSERT_EQ(markdown.exit_code, 0) << markdown.err;
  int best = 0;
  for (int i = 1; i < 4; ++i) {
    if (store.groups(i).metric_mean() > store.groups(best).metric_mean()) {
      best = i;
    }
  }
  for (int i = 0; i < 4; ++i) {
    const v1::ResultGroup& group = store.groups(i);
    std::string score =
        Percent(group.metric_mean()) + " ± " + Percent(group.metric_std());
    if (i == best) score = "**" + score + "**";
    EXPECT_THAT(markdown.out, HasSubstr(absl::StrCat("| ", kRanks[i], " | ",
                                                     score, " | 2 |")));
    EXPECT_THAT(markdown.out,
                HasSubstr(absl::StrFormat("| %d | %s | %.3f%% |", kRanks[i],
                                          Commas(group.trainable_parameters()),
                                          group.trainable_percent())));
  }
  EXPECT_THAT(
      markdown.out,
      HasSubstr("| Epoch | Train Loss | Val Accuracy |\n|---|---|---|"));
  const auto [rank0, seed0] = rank_seed[(*runs)[0].run_id()];
  EXPECT_THAT(markdown.out,
              HasSubstr(absl::StrFormat("| 2 | %.4f | %s |",
                                        EpochTrainLoss(rank0, seed0, 2),
                                        Percent(Accuracy(rank0, seed0, 2)))));

  const LoractlResult table = Run({"results", sweep_id});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("Trainable parameters by lora.rank"));
  EXPECT_THAT(table.out,
              HasSubstr(Commas(store.groups(3).trainable_parameters())));

  const LoractlResult yaml = Run({"results", sweep_id, "--output", "yaml"});
  ASSERT_EQ(yaml.exit_code, 0) << yaml.err;
  const YAML::Node node = YAML::Load(yaml.out);
  EXPECT_EQ(node["ablation"][2]["value"].as<int>(), 4);
  EXPECT_EQ(node["ablation"][2]["mean"].as<double>(),
            store.groups(2).metric_mean());

  // --- plot ---
  const LoractlResult plot = Run({"plot", sweep_id, "-o", "ablation.svg"});
  ASSERT_EQ(plot.exit_code, 0) << plot.err;
  const std::string svg = ReadFile("ablation.svg");
  absl::StatusOr<std::vector<XmlElement>> elements = ParseXml(svg);
  ASSERT_TRUE(elements.ok()) << elements.status();
  std::vector<std::string> groups;
  for (const XmlElement& element : *elements) {
    auto css = element.attributes.find("class");
    if (element.name != "circle" || css == element.attributes.end() ||
        css->second != "metric-point") {
      continue;
    }
    groups.push_back(element.attributes.at("data-group"));
    const size_t i = groups.size() - 1;
    ASSERT_LT(i, 4u);
    EXPECT_EQ(std::stod(element.attributes.at("data-mean")),
              store.groups(static_cast<int>(i)).metric_mean());
  }
  EXPECT_THAT(groups, ::testing::ElementsAre("1", "2", "4", "8"));
  if (std::filesystem::exists("/usr/bin/python3")) {
    // An independent XML parser agrees.
    const std::string command = absl::StrCat(
        "/usr/bin/python3 -c \"import sys, xml.etree.ElementTree as E; "
        "r = E.parse(sys.argv[1]).getroot(); "
        "print(sum(1 for e in r.iter('{http://www.w3.org/2000/svg}circle') "
        "if e.get('class') == 'metric-point'))\" ",
        work_, "/ablation.svg");
    FILE* pipe = ::popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    char buffer[64] = {0};
    const size_t got = std::fread(buffer, 1, sizeof(buffer) - 1, pipe);
    EXPECT_EQ(::pclose(pipe), 0);
    EXPECT_EQ(std::string(buffer, got), "4\n");
  }

  // --- artifacts get ---
  const std::string run_id = (*runs)[5].run_id();
  const LoractlResult got =
      Run({"artifacts", "get", run_id, "-o", "adapter-r5"});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  EXPECT_THAT(got.out, HasSubstr("downloaded " + adapter_ids[run_id]));
  EXPECT_THAT(got.out, HasSubstr("sha256 verified"));
  int files = 0;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(adapter_dirs[run_id])) {
    if (!entry.is_regular_file()) continue;
    ++files;
    const std::string relative =
        std::filesystem::relative(entry.path(), adapter_dirs[run_id]);
    EXPECT_EQ(ReadFile("adapter-r5/" + relative),
              ReadFile(entry.path().string()))
        << relative;
  }
  EXPECT_EQ(files, 3);
  // A folder that is not empty is refused (a usage error), and left alone.
  const LoractlResult again =
      Run({"artifacts", "get", run_id, "-o", "adapter-r5"});
  EXPECT_EQ(again.exit_code, 2) << again.err;
  EXPECT_THAT(again.err, HasSubstr("not empty"));

  // --- listings ---
  const LoractlResult sweeps = Run({"sweeps"});
  ASSERT_EQ(sweeps.exit_code, 0) << sweeps.err;
  EXPECT_THAT(sweeps.out, HasSubstr(sweep_id));
  EXPECT_THAT(sweeps.out, HasSubstr("SUCCEEDED"));
  EXPECT_THAT(sweeps.out, HasSubstr("8/8"));
  const LoractlResult sweeps_json = Run({"sweeps", "--output", "json"});
  ASSERT_EQ(sweeps_json.exit_code, 0) << sweeps_json.err;
  EXPECT_EQ(nlohmann::json::parse(sweeps_json.out)["sweeps"][0]["sweep_id"],
            sweep_id);

  const LoractlResult succeeded =
      Run({"runs", sweep_id, "--state", "succeeded"});
  ASSERT_EQ(succeeded.exit_code, 0) << succeeded.err;
  EXPECT_EQ(Lines(succeeded.out).size(), 9u) << succeeded.out;
  const LoractlResult pending = Run({"runs", sweep_id, "--state", "pending"});
  ASSERT_EQ(pending.exit_code, 0) << pending.err;
  EXPECT_EQ(Lines(pending.out).size(), 1u) << pending.out;

  const LoractlResult shown = Run({"show", run_id});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  const auto [rank5, seed5] = rank_seed[run_id];
  EXPECT_THAT(shown.out, HasSubstr(adapter_ids[run_id]));
  bool best_line = false;
  for (const std::string& line : Lines(shown.out)) {
    if (absl::StartsWith(line, "best val_accuracy:")) {
      best_line = true;
      EXPECT_THAT(line, HasSubstr(Percent(Best(rank5, seed5)) + " (epoch 2)"));
    }
  }
  EXPECT_TRUE(best_line) << shown.out;
  EXPECT_THAT(shown.out,
              HasSubstr(Commas((*runs)[5].parameter_counts().trainable())));
  const LoractlResult shown_json = Run({"show", run_id, "-o", "json"});
  ASSERT_EQ(shown_json.exit_code, 0) << shown_json.err;
  EXPECT_EQ(nlohmann::json::parse(shown_json.out)["adapter_artifact_id"],
            adapter_ids[run_id]);
  const LoractlResult shown_sweep = Run({"show", sweep_id});
  ASSERT_EQ(shown_sweep.exit_code, 0) << shown_sweep.err;
  EXPECT_THAT(shown_sweep.out, HasSubstr("  name: rank-ablation"));

  const LoractlResult workers = Run({"workers"});
  ASSERT_EQ(workers.exit_code, 0) << workers.err;
  EXPECT_THAT(workers.out, HasSubstr(worker.worker_id()));
  EXPECT_THAT(workers.out, HasSubstr("fake-worker"));

  const LoractlResult listed = Run({"artifacts", "list", "--kind", "adapter"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(Lines(listed.out).size(), 9u) << listed.out;

  // --- resubmitting changes nothing ---
  const LoractlResult resubmitted = Run({"submit", file});
  ASSERT_EQ(resubmitted.exit_code, 0) << resubmitted.err;
  EXPECT_THAT(resubmitted.out, HasSubstr("already existed"));
  EXPECT_EQ(AllSweeps().size(), 1u);
}

TEST_F(LoractlWorkflowTest, CancelARunAndASweep) {
  const std::string file = WriteFile(
      "cancel.yaml",
      "name: to-cancel\nmodel: roberta-tiny\ntask: polarity\nparameters:\n"
      "  lora.rank: [1, 2, 4, 8]\nfixed: {epochs: 3}\n");
  const LoractlResult submitted = Run({"submit", file});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string sweep_id = SweepIdOf(submitted.out);
  absl::StatusOr<std::vector<v1::Run>> runs =
      integration::ListAllRuns(sweeps_.get(), sweep_id, 100);
  ASSERT_TRUE(runs.ok()) << runs.status();

  TestWorker worker(lorad_->NewChannel(), "fake-worker");
  ASSERT_TRUE(worker.Register().ok());
  absl::StatusOr<v1::Job> job = LeaseJob(&worker);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(ReportEpochs(&worker, *job, 1, 1).ok());

  // Results of a running sweep: what the store holds so far.
  const LoractlResult partial = Run({"results", sweep_id, "--format", "json"});
  ASSERT_EQ(partial.exit_code, 0) << partial.err;
  const nlohmann::json so_far = nlohmann::json::parse(partial.out);
  EXPECT_EQ(so_far["state"], "RUNNING");
  bool reported = false;
  for (const nlohmann::json& run : so_far["runs"]) {
    if (run["run_id"] != job->run().run_id()) {
      EXPECT_TRUE(run["epochs"].empty());
      continue;
    }
    reported = true;
    ASSERT_EQ(run["epochs"].size(), 1u);
    EXPECT_EQ(run["epochs"][0]["train_loss"].get<double>(),
              EpochTrainLoss(RankOf(*job), SeedOf(*job), 1));
    EXPECT_EQ(run["epochs"][0]["val_accuracy"].get<double>(),
              Accuracy(RankOf(*job), SeedOf(*job), 1));
  }
  EXPECT_TRUE(reported);

  absl::StatusOr<std::unique_ptr<LoractlProcess>> watch =
      Start({"watch", sweep_id});
  ASSERT_TRUE(watch.ok()) << watch.status();

  // One queued run.
  std::string queued;
  for (const v1::Run& run : *runs) {
    if (run.run_id() != job->run().run_id()) queued = run.run_id();
  }
  const LoractlResult cancel_run = Run({"cancel", queued});
  ASSERT_EQ(cancel_run.exit_code, 0) << cancel_run.err;
  EXPECT_EQ(cancel_run.out, "run " + queued + " CANCELLED\n");
  EXPECT_EQ(integration::GetRun(sweeps_.get(), queued)->state(),
            v1::RUN_STATE_CANCELLED);

  // The whole sweep: the running run is told to stop.
  const LoractlResult cancel_sweep = Run({"cancel", sweep_id});
  ASSERT_EQ(cancel_sweep.exit_code, 0) << cancel_sweep.err;
  EXPECT_THAT(cancel_sweep.out, HasSubstr("sweep " + sweep_id));
  const absl::Status stopped = ReportEpochs(&worker, *job, 2, 2);
  EXPECT_EQ(stopped.code(), absl::StatusCode::kCancelled) << stopped;
  v1::FinishRunResponse finished;
  ASSERT_TRUE(worker.Finish(*job, v1::RUN_OUTCOME_STOPPED, &finished).ok());
  ASSERT_TRUE(integration::WaitForSweepState(sweeps_.get(), sweep_id,
                                             v1::SWEEP_STATE_CANCELLED)
                  .ok());

  // watch ends with the sweep, exit status 1: it did not succeed.
  const LoractlResult watched = (*watch)->Wait(absl::Seconds(30));
  EXPECT_EQ(watched.exit_code, 1) << Describe({"watch", sweep_id}, watched);
  EXPECT_THAT(watched.out,
              HasSubstr("sweep " + sweep_id + " ended CANCELLED: 4/4 done"));
  EXPECT_THAT(watched.out, HasSubstr("CANCELLED"));

  // A cancelled run has no adapter to download: a server-side refusal.
  const LoractlResult no_adapter =
      Run({"artifacts", "get", queued, "-o", "nothing"});
  EXPECT_EQ(no_adapter.exit_code, 1) << no_adapter.err;
  EXPECT_THAT(no_adapter.err, HasSubstr("has no adapter yet"));
  EXPECT_FALSE(std::filesystem::exists(work_ + "/nothing"));

  // Unknown ids are server errors.
  const LoractlResult unknown = Run({"watch", "sw-00000000000000000000"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("NOT_FOUND"));
  EXPECT_EQ(Run({"cancel", "run-00000000000000000000"}).exit_code, 1);
}

TEST_F(LoractlWorkflowTest, SubmitWaitOnATerminalRedrawsLinesInPlace) {
  // In-process, with stdout declared a terminal 72 columns wide.
  const std::string file =
      WriteFile("tty.yaml",
                "name: tty\nmodel: roberta-tiny\ntask: polarity\nparameters:\n"
                "  lora.rank: [1, 2]\nfixed: {epochs: 3}\n");
  std::ostringstream out;
  std::ostringstream err;
  CliIo io;
  io.out = &out;
  io.err = &err;
  io.env = [this](const std::string& name) -> std::optional<std::string> {
    auto it = env_.vars.find(name);
    if (it == env_.vars.end()) return std::nullopt;
    return it->second;
  };
  io.out_is_terminal = true;
  io.terminal_width = 72;
  int code = -1;
  std::thread cli([&] {
    code = RunLoractl({"submit", work_ + "/" + file, "--wait"},
                      BuiltinCommands(), io);
  });
  TestWorker worker(lorad_->NewChannel(), "fake-worker");
  ASSERT_TRUE(worker.Register().ok());
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<v1::Job> job = LeaseJob(&worker);
    ASSERT_TRUE(job.ok()) << job.status();
    ASSERT_TRUE(
        ReportEpochs(&worker, *job, 1, kEpochs, absl::Milliseconds(300)).ok());
    ASSERT_TRUE(FinishWithAdapter(&worker, *job, kEpochs, "").ok());
  }
  cli.join();
  EXPECT_EQ(code, 0) << err.str();
  const std::string text = out.str();
  EXPECT_THAT(text, HasSubstr(" submitted"));
  // The block (header, 2 runs, summary) is redrawn: cursor up 4 lines,
  // each line cleared before it is written.
  EXPECT_THAT(text, HasSubstr("\x1b[4F\x1b[2Ksweep "));
  EXPECT_THAT(text, HasSubstr("\x1b[2K#1 lora.rank=2"));
  // Lines are cut to the terminal's width, so redraws never wrap.
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    absl::string_view shown = line;
    while (absl::ConsumePrefix(&shown, "\x1b[4F") ||
           absl::ConsumePrefix(&shown, "\x1b[2K")) {
    }
    if (line.find("\x1b[2K") != absl::string_view::npos) {
      EXPECT_LE(DisplayWidth(std::string(shown)), 71u) << shown;
    }
  }
  EXPECT_THAT(text, HasSubstr("ended SUCCEEDED: 2/2 done: 2 succeeded"));
}

}  // namespace
}  // namespace lora::loractl::testing
