// The coordinator's Prometheus metrics (base/metrics.h), served on /metrics:
//
//   lora_runs{state}                        runs by state, every sweep
//   lora_sweep_runs{sweep,state}            runs by state per sweep
//   lora_queue_depth                        PENDING runs
//   lora_workers_connected                  workers heartbeating within a TTL
//   lora_stalled_runs{sweep}                RUNNING runs without progress
//   lora_dispatch_latency_seconds           AcquireJob call -> lease
//   lora_metric_points_ingested_total       points stored from workers
//   lora_store_transaction_seconds{op}      run store step latency
//   lora_sweep_best_metric{sweep,model,rank,alpha,stat}   stat: mean|max
//   lora_sweep_latest_loss{sweep,model,rank,alpha,stat}   over seeds
//   lora_sweep_trainable_parameters{sweep,model,rank,alpha}
//
// Labels stay bounded: never run ids or steps; per-sweep series disappear
// once a sweep has been finished for longer than the retention period.
// Store-derived families are computed at scrape time from the run store.
#ifndef LORA_SWEEP_COORDINATOR_COORDINATOR_METRICS_H_
#define LORA_SWEEP_COORDINATOR_COORDINATOR_METRICS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "base/metrics.h"
#include "coordinator/coordinator.h"

namespace lora::coordinator {

class CoordinatorMetrics {
 public:
  // Registers every family in `registry`. Both pointers must outlive the
  // returned object.
  static absl::StatusOr<std::unique_ptr<CoordinatorMetrics>> Create(
      metrics::Registry* registry, Coordinator* coordinator,
      int64_t retention_ms);
  ~CoordinatorMetrics();

  void ObserveDispatch(double seconds);
  void CountIngested(int64_t points);
  // Latency of one run store step, by operation name ("append_metrics").
  void ObserveStore(const std::string& op, double seconds);

 private:
  CoordinatorMetrics(metrics::Registry* registry, Coordinator* coordinator,
                     int64_t retention_ms);
  absl::Status Register();

  metrics::Registry* const registry_;
  Coordinator* const coordinator_;
  const int64_t retention_ms_;
  std::shared_ptr<metrics::Histogram> dispatch_;
  std::shared_ptr<metrics::Counter> ingested_;
  std::shared_ptr<metrics::HistogramFamily> store_latency_;
  // Filled by Register(), read-only afterwards.
  std::map<std::string, std::shared_ptr<metrics::Histogram>> store_ops_;
};

}  // namespace lora::coordinator

#endif  // LORA_SWEEP_COORDINATOR_COORDINATOR_METRICS_H_
