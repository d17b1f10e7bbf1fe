// The victim of sqlite_run_store_test's crash test: opens the run store at
// PATH and appends metric batches for RUN_ID (attempt ATTEMPT) forever,
// starting at batch FIRST_BATCH. Batch b holds POINTS points named "loss" at
// steps b * POINTS + 1 ... (b + 1) * POINTS. After each AppendMetrics that
// returned OK it prints "acked <b>" and flushes, so everything it printed is
// durable. The test kills it with SIGKILL.
//
//   store_crash_child PATH RUN_ID ATTEMPT FIRST_BATCH POINTS
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "coordinator/run_store.h"
#include "coordinator/sqlite_run_store.h"

int main(int argc, char** argv) {
  using ::lora::coordinator::AppendMetricsResult;
  using ::lora::coordinator::MetricPoint;
  using ::lora::coordinator::SqliteRunStore;
  int64_t attempt = 0, first_batch = 0, points = 0;
  if (argc != 6 || !absl::SimpleAtoi(argv[3], &attempt) ||
      !absl::SimpleAtoi(argv[4], &first_batch) ||
      !absl::SimpleAtoi(argv[5], &points) || points < 1) {
    std::fprintf(stderr,
                 "usage: store_crash_child PATH RUN_ID ATTEMPT FIRST_BATCH "
                 "POINTS\n");
    return 2;
  }
  absl::StatusOr<std::unique_ptr<SqliteRunStore>> store =
      SqliteRunStore::Open(argv[1]);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 1;
  }
  const std::string run_id = argv[2];
  for (int64_t batch = first_batch;; ++batch) {
    std::vector<MetricPoint> metrics;
    for (int64_t i = 0; i < points; ++i) {
      MetricPoint point;
      point.name = "loss";
      point.step = batch * points + i + 1;
      point.epoch = batch;
      point.value = 1.0 / static_cast<double>(point.step);
      point.time_ms = point.step;
      metrics.push_back(point);
    }
    absl::StatusOr<AppendMetricsResult> result =
        (*store)->AppendMetrics(run_id, attempt, metrics, batch);
    if (!result.ok()) {
      std::fprintf(stderr, "batch %lld: %s\n", static_cast<long long>(batch),
                   result.status().ToString().c_str());
      return 1;
    }
    std::printf("acked %lld\n", static_cast<long long>(batch));
    std::fflush(stdout);
  }
}
