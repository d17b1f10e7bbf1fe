// Helpers for the run store tests: status assertions, literal sweeps and
// runs, and the transitions a worker or the scheduler would send.
#ifndef LORA_SWEEP_TESTS_COORDINATOR_STORE_TEST_UTIL_H_
#define LORA_SWEEP_TESTS_COORDINATOR_STORE_TEST_UTIL_H_

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "coordinator/run_state.h"
#include "coordinator/run_store.h"
#include "gtest/gtest.h"

#define LORA_TEST_CONCAT_INNER_(x, y) x##y
#define LORA_TEST_CONCAT_(x, y) LORA_TEST_CONCAT_INNER_(x, y)

// ASSERT_OK(status_or_statusor.status()).
#define ASSERT_OK(expr)                                       \
  do {                                                        \
    const ::absl::Status lora_test_status_ = (expr);          \
    ASSERT_TRUE(lora_test_status_.ok()) << lora_test_status_; \
  } while (false)

// ASSERT_OK_AND_ASSIGN(RunRecord run, store.GetRun("r1"));
#define ASSERT_OK_AND_ASSIGN(lhs, expr)                                        \
  ASSERT_OK_AND_ASSIGN_IMPL_(LORA_TEST_CONCAT_(lora_statusor_, __LINE__), lhs, \
                             expr)
#define ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                               \
  ASSERT_TRUE(statusor.ok()) << statusor.status();      \
  lhs = *std::move(statusor)

namespace lora::coordinator::test {

// A fresh, empty folder under TEST_TMPDIR.
inline std::string FreshDir(const std::string& name) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline std::string RunId(const std::string& sweep_id, int64_t index) {
  return absl::StrCat(sweep_id, "-r", index);
}

inline SweepRecord MakeSweep(const std::string& sweep_id, int64_t create_ms,
                             int64_t max_attempts = 3,
                             const std::string& metric = "val_accuracy",
                             bool maximize = true) {
  SweepRecord sweep;
  sweep.sweep_id = sweep_id;
  sweep.name = absl::StrCat(sweep_id, "-name");
  sweep.spec_yaml = "name: x\nmethod: grid\n";
  sweep.source_name = "sweep.yaml";
  sweep.metric_name = metric;
  sweep.metric_maximize = maximize;
  sweep.priority = 5;
  sweep.max_attempts = max_attempts;
  sweep.create_ms = create_ms;
  return sweep;
}

// Runs <sweep>-r0 ... <sweep>-r<n-1> with indexes 0 ... n-1.
inline std::vector<RunRecord> MakeRuns(const std::string& sweep_id, int64_t n) {
  std::vector<RunRecord> runs;
  for (int64_t i = 0; i < n; ++i) {
    RunRecord run;
    run.run_id = RunId(sweep_id, i);
    run.index = i;
    run.config_yaml = absl::StrCat("lora:\n  rank: ", 1 << i, "\n");
    run.config_hash = absl::StrCat("hash-", sweep_id, "-", i);
    run.parameters_json = absl::StrCat("{\"lora.rank\": ", 1 << i, "}");
    run.device = "cuda";
    run.gpus = 1;
    run.cpu_threads = 4;
    run.worker_labels = {{"zone", "eu"}, {"pool", absl::StrCat("p", i)}};
    run.counts = {125000000 + i, 1000 + i, 600 + i, 400, 124999000};
    runs.push_back(std::move(run));
  }
  return runs;
}

inline RunTransition Lease(const std::string& worker, int64_t now_ms,
                           int64_t lease_expire_ms) {
  RunTransition t;
  t.kind = RunTransition::Kind::kLease;
  t.worker_id = worker;
  t.now_ms = now_ms;
  t.lease_expire_ms = lease_expire_ms;
  return t;
}

// A worker-side transition from `worker` for `attempt`.
inline RunTransition ByWorker(RunTransition::Kind kind,
                              const std::string& worker, int64_t attempt,
                              int64_t now_ms) {
  RunTransition t;
  t.kind = kind;
  t.worker_id = worker;
  t.attempt = attempt;
  t.now_ms = now_ms;
  return t;
}

inline RunTransition Coordinator(RunTransition::Kind kind, int64_t now_ms) {
  RunTransition t;
  t.kind = kind;
  t.now_ms = now_ms;
  return t;
}

inline MetricPoint Point(const std::string& name, int64_t step, int64_t epoch,
                         double value, int64_t time_ms = 0) {
  MetricPoint point;
  point.name = name;
  point.step = step;
  point.epoch = epoch;
  point.value = value;
  point.time_ms = time_ms == 0 ? 1000000 + step : time_ms;
  return point;
}

}  // namespace lora::coordinator::test

#endif  // LORA_SWEEP_TESTS_COORDINATOR_STORE_TEST_UTIL_H_
