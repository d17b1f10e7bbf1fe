// Passes a realistic exposition through `promtool check metrics`, which
// parses it with Prometheus's own text parser and lints the names (counters
// end in _total, base units, ...). promtool comes from the Debian package
// prometheus, which the set-up script installs: a missing promtool fails
// this test rather than skipping it.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lora::metrics {
namespace {

using ::testing::HasSubstr;

// /usr/bin/promtool, else the first promtool on PATH, else "".
std::string FindPromtool() {
  if (::access("/usr/bin/promtool", X_OK) == 0) return "/usr/bin/promtool";
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  for (absl::string_view dir : absl::StrSplit(path, ':')) {
    if (dir.empty()) continue;
    std::string candidate = absl::StrCat(dir, "/promtool");
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

struct CheckResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `promtool check metrics < text`.
CheckResult PromtoolCheckMetrics(const std::string& text,
                                 const std::string& file_name) {
  CheckResult result;
  const std::string promtool = FindPromtool();
  if (promtool.empty()) {
    ADD_FAILURE() << "promtool not found at /usr/bin/promtool or on PATH; "
                     "install the Debian package prometheus "
                     "(scripts/debian-packages.txt)";
    return result;
  }
  const std::string path =
      absl::StrCat(std::getenv("TEST_TMPDIR"), "/", file_name);
  {
    std::ofstream file(path, std::ios::binary);
    file << text;
    if (!file.good()) {
      ADD_FAILURE() << "cannot write " << path;
      return result;
    }
  }
  const std::string command =
      absl::StrCat("'", promtool, "' check metrics < '", path, "' 2>&1");
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "cannot run " << command;
    return result;
  }
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    result.output.append(buffer, n);
  }
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// What lorad and a worker export, with the awkward corners: escapes and
// UTF-8 in label values and help, NaN and infinities, unlabelled and
// labelled histograms, a callback family.
void FillRealisticRegistry(Registry& registry) {
  auto started = *registry.AddCounter("lora_runs_started_total",
                                      "Runs started, by sweep and model.",
                                      {"sweep", "model"});
  started->WithLabels({"sst2-rank", "roberta-base"})->Increment(12);
  started->WithLabels({"cola \"quoted\" \\ back\nnew line \xC3\xBC", "bert"})
      ->Increment();

  auto bytes = *registry.AddCounter(
      "lora_checkpoint_written_bytes_total",
      "Checkpoint bytes written.\nSecond line with C:\\path.");
  bytes->WithLabels({})->Increment(123456789012.0);

  auto workers = *registry.AddGauge("lora_workers_connected",
                                    "Workers with an open stream.", {"device"});
  workers->WithLabels({"cpu"})->Set(3);
  workers->WithLabels({"cuda"})->Set(0);

  auto loss = *registry.AddGauge("lora_eval_loss", "Latest evaluation loss.",
                                 {"sweep"});
  loss->WithLabels({"diverged"})->Set(std::nan(""));
  loss->WithLabels({"exploded"})->Set(HUGE_VAL);
  loss->WithLabels({"fine"})->Set(0.3466);
  loss->WithLabels({"odd"})->Set(-HUGE_VAL);

  auto steps = *registry.AddHistogram(
      "lora_train_step_duration_seconds", "Wall time of one training step.",
      {"sweep"}, *ExponentialBuckets(0.001, 4, 8));
  for (double v : {0.0004, 0.02, 0.02, 0.3, 7.5, 100.0}) {
    steps->WithLabels({"sst2-rank"})->Observe(v);
  }
  steps->WithLabels({"cola"})->Observe(0.05);

  auto payload = *registry.AddHistogram("lora_rpc_payload_bytes",
                                        "Size of ReportMetrics payloads.", {},
                                        *LinearBuckets(1024, 1024, 4));
  payload->WithLabels({})->Observe(1500);

  registry
      .AddCallbackGauge(
          "lora_runs", "Runs by state, from the run store.", {"state"},
          [] {
            return std::vector<Sample>{
                {{"pending"}, 4}, {{"running"}, 2}, {{"succeeded"}, 17}};
          })
      .IgnoreError();
}

TEST(MetricsPromtoolTest, RealisticExpositionPassesPromtoolCheckMetrics) {
  Registry registry;
  FillRealisticRegistry(registry);
  const std::string text = registry.Exposition();
  // The test is only as good as what it feeds promtool.
  ASSERT_THAT(text, HasSubstr("lora_train_step_duration_seconds_bucket{"
                              "sweep=\"sst2-rank\",le=\"+Inf\"} 6\n"));
  ASSERT_THAT(text, HasSubstr("\\\"quoted\\\" \\\\ back\\nnew line"));
  ASSERT_THAT(text, HasSubstr("lora_eval_loss{sweep=\"diverged\"} NaN\n"));
  ASSERT_THAT(text, HasSubstr("lora_runs{state=\"running\"} 2\n"));

  const CheckResult result = PromtoolCheckMetrics(text, "realistic.prom");
  EXPECT_EQ(result.exit_code, 0) << result.output << "\n--- input:\n" << text;
  EXPECT_EQ(result.output, "") << "--- input:\n" << text;
}

// The harness must see promtool's complaints, or the test above proves
// nothing.
TEST(MetricsPromtoolTest, PromtoolFlagsACounterWithoutTotalSuffix) {
  Registry registry;
  auto bad = *registry.AddCounter("lora_runs_started", "Runs started.");
  bad->WithLabels({})->Increment();
  const CheckResult result =
      PromtoolCheckMetrics(registry.Exposition(), "no_total_suffix.prom");
  EXPECT_NE(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("_total"));
}

TEST(MetricsPromtoolTest, PromtoolRejectsMalformedText) {
  const CheckResult result = PromtoolCheckMetrics(
      "# TYPE lora_x gauge\nlora_x{a=\"unterminated} 1\n", "malformed.prom");
  EXPECT_NE(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output, "");
}

}  // namespace
}  // namespace lora::metrics
