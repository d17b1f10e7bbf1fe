// Feeds thousands of mutated sweep files through validation and expansion:
// nothing may crash or hang, and every rejection must be a Status with a
// message that names the file.
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "lora_core/splitmix64.h"
#include "sweep/sweep_spec.h"

namespace lora::sweep {
namespace {

const char* const kSeeds[] = {
    R"(name: rank-ablation
model: roberta-tiny
task: polarity
method: grid
parameters:
  lora.rank: [1, 2, 4, 8]
  seed: [0, 1, 2]
fixed:
  lora.target_modules: [query, value]
  epochs: 3
  max_seq_len: 64
  lr: 5.0e-4
  amp: bf16
resources: {device: cpu, cpu_threads: 2, worker_labels: {zone: a}}
max_attempts: 3
metric: {name: val_accuracy, goal: maximize}
)",
    R"(name: random
model: gpt2-tiny
task: e2e
method: random
count: 20
seed: 3
parameters:
  lr: {min: 1.0e-5, max: 1.0e-2, distribution: log_uniform}
  lora.rank: {min: 1, max: 16, integer: true}
  lora.alpha: {values: [8, 16]}
)",
    R"(name: listed
model: roberta-tiny
task: text
method: list
points:
  - {lora.rank: 1, lr: 1.0e-3}
  - {lora: {rank: 8}, seed: 3, "max_steps": 10}
)",
};

// Pieces of YAML syntax and of sweep vocabulary that mutations splice in.
const char* const kTokens[] = {
    "[",
    "]",
    "{",
    "}",
    ":",
    ": ",
    ",",
    "-",
    "- ",
    "\n",
    "  ",
    "#",
    "'",
    "\"",
    "&a",
    "*a",
    "!!str",
    "? ",
    "|",
    ">",
    "~",
    "null",
    "1e999",
    "-1",
    "0",
    "4294967296",
    "nan",
    ".inf",
    "lora.rank",
    "fixed",
    "parameters",
    "points",
    "method: random",
    "count: 100000000",
    "max_seq_len: 100000",
    "amp: fp16",
    "model: gpt2",
    "task: sst2",
    "\t",
    "\xff",
    "\xc3\x28",
    "<<: *a",
};

std::string Mutate(const std::string& text, core::SplitMix64& random) {
  std::string out = text;
  const int edits = 1 + static_cast<int>(random.Below(4));
  for (int e = 0; e < edits && !out.empty(); ++e) {
    const size_t at = random.Below(out.size());
    switch (random.Below(6)) {
      case 0:  // delete a span
        out.erase(at, 1 + random.Below(8));
        break;
      case 1:  // flip a byte
        out[at] = static_cast<char>(random.Below(256));
        break;
      case 2: {  // splice a token
        const char* token = kTokens[random.Below(std::size(kTokens))];
        out.insert(at, token);
        break;
      }
      case 3: {  // duplicate a line
        const size_t start = out.rfind('\n', at);
        const size_t begin = start == std::string::npos ? 0 : start + 1;
        const size_t end = out.find('\n', at);
        const std::string line = out.substr(
            begin, (end == std::string::npos ? out.size() : end) - begin);
        out.insert(begin, line + "\n");
        break;
      }
      case 4:  // truncate
        out.resize(at);
        break;
      default: {  // swap two bytes
        const size_t other = random.Below(out.size());
        std::swap(out[at], out[other]);
        break;
      }
    }
  }
  return out;
}

TEST(SweepSpecFuzzTest, MutatedFilesNeverCrashAndFailWithStatuses) {
  core::SplitMix64 random(20261129);
  SweepValidationOptions options = LocalValidationOptions();
  options.max_runs = 500;
  int accepted = 0, rejected = 0;
  for (int i = 0; i < 5000; ++i) {
    const std::string text =
        Mutate(kSeeds[random.Below(std::size(kSeeds))], random);
    absl::StatusOr<ExpandedSweep> sweep = LoadSweep(text, "fuzz.yaml", options);
    if (sweep.ok()) {
      ++accepted;
      EXPECT_FALSE(sweep->runs.empty()) << text;
      EXPECT_LE(static_cast<int64_t>(sweep->runs.size()), options.max_runs);
      continue;
    }
    ++rejected;
    const absl::StatusCode code = sweep.status().code();
    EXPECT_TRUE(code == absl::StatusCode::kInvalidArgument ||
                code == absl::StatusCode::kResourceExhausted)
        << sweep.status() << "\n"
        << text;
    EXPECT_EQ(sweep.status().message().rfind("fuzz.yaml", 0), 0u)
        << sweep.status() << "\n"
        << text;
  }
  // The mutations must exercise both outcomes.
  EXPECT_GT(accepted, 20);
  EXPECT_GT(rejected, 2000);
}

}  // namespace
}  // namespace lora::sweep
