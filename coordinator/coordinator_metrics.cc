#include "coordinator/coordinator_metrics.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "lora_core/train_config.h"

namespace lora::coordinator {
namespace {

using metrics::Sample;

const char* const kStates[] = {"PENDING",   "LEASED", "RUNNING",
                               "SUCCEEDED", "FAILED", "CANCELLED"};

std::vector<int64_t> CountsOf(const RunCounts& c) {
  return {c.pending, c.leased, c.running, c.succeeded, c.failed, c.cancelled};
}

// Sweeps still worth exporting: not terminal, or terminal for less than
// the retention period.
std::vector<SweepRecord> ExportedSweeps(RunStore* store, int64_t now_ms,
                                        int64_t retention_ms) {
  std::vector<SweepRecord> sweeps;
  std::string after;
  while (true) {
    absl::StatusOr<std::vector<SweepRecord>> page =
        store->ListSweeps(after, 500);
    if (!page.ok() || page->empty()) break;
    for (SweepRecord& sweep : *page) {
      after = sweep.sweep_id;
      if (sweep.end_ms > 0 && now_ms - sweep.end_ms > retention_ms) continue;
      sweeps.push_back(std::move(sweep));
    }
    if (page->size() < 500) break;
  }
  return sweeps;
}

std::string Number(double value) {
  if (value == std::floor(value) && std::abs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  return absl::StrCat(value);
}

// One (sweep, model, rank, alpha) cell of the ablation, over seeds.
struct Cell {
  std::vector<double> best;
  std::vector<double> loss;
  int64_t trainable = 0;
};

}  // namespace

CoordinatorMetrics::CoordinatorMetrics(metrics::Registry* registry,
                                       Coordinator* coordinator,
                                       int64_t retention_ms)
    : registry_(registry),
      coordinator_(coordinator),
      retention_ms_(retention_ms) {}

CoordinatorMetrics::~CoordinatorMetrics() {
  for (const char* name :
       {"lora_runs", "lora_sweep_runs", "lora_queue_depth",
        "lora_workers_connected", "lora_stalled_runs", "lora_sweep_best_metric",
        "lora_sweep_latest_loss", "lora_sweep_trainable_parameters"}) {
    registry_->Unregister(name);
  }
}

absl::StatusOr<std::unique_ptr<CoordinatorMetrics>> CoordinatorMetrics::Create(
    metrics::Registry* registry, Coordinator* coordinator,
    int64_t retention_ms) {
  std::unique_ptr<CoordinatorMetrics> metrics(
      new CoordinatorMetrics(registry, coordinator, retention_ms));
  LORA_RETURN_IF_ERROR(metrics->Register());
  return metrics;
}

void CoordinatorMetrics::ObserveDispatch(double seconds) {
  dispatch_->Observe(seconds);
}

void CoordinatorMetrics::CountIngested(int64_t points) {
  ingested_->Increment(static_cast<double>(points));
}

void CoordinatorMetrics::ObserveStore(const std::string& op, double seconds) {
  auto known = store_ops_.find(op);
  if (known != store_ops_.end()) {
    known->second->Observe(seconds);
  } else {
    store_latency_->WithLabels({op})->Observe(seconds);
  }
}

absl::Status CoordinatorMetrics::Register() {
  LORA_ASSIGN_OR_RETURN(std::vector<double> latency_buckets,
                        metrics::ExponentialBuckets(0.0005, 2, 16));
  LORA_ASSIGN_OR_RETURN(
      std::shared_ptr<metrics::HistogramFamily> dispatch,
      registry_->AddHistogram(
          "lora_dispatch_latency_seconds",
          "Time from a worker's AcquireJob call to the lease it gets.", {},
          latency_buckets));
  dispatch_ = dispatch->WithLabels({});
  LORA_ASSIGN_OR_RETURN(
      std::shared_ptr<metrics::CounterFamily> ingested,
      registry_->AddCounter("lora_metric_points_ingested_total",
                            "Metric points stored from workers' progress "
                            "reports."));
  ingested_ = ingested->WithLabels({});
  LORA_ASSIGN_OR_RETURN(
      store_latency_,
      registry_->AddHistogram("lora_store_transaction_seconds",
                              "Latency of one run store step (one SQLite "
                              "transaction), by operation.",
                              {"op"}, latency_buckets));
  // The store's operations, looked up once: the hot path reads this map
  // without a lock.
  for (const char* op :
       {"create_sweep", "get_sweep", "list_sweeps", "get_run", "list_runs",
        "transition_run", "cancel_sweep", "requeue_failed_runs",
        "append_metrics", "read_metric_series", "read_events", "upsert_worker",
        "list_workers", "put_artifact", "get_artifact", "list_artifacts"}) {
    store_ops_[op] = store_latency_->WithLabels({op});
  }

  Coordinator* coordinator = coordinator_;
  const int64_t retention_ms = retention_ms_;
  LORA_RETURN_IF_ERROR(registry_->AddCallbackGauge(
      "lora_runs", "Runs by state, over every exported sweep.", {"state"},
      [coordinator, retention_ms] {
        std::vector<int64_t> totals(6, 0);
        for (const SweepRecord& sweep : ExportedSweeps(
                 coordinator->store(), coordinator->NowMs(), retention_ms)) {
          std::vector<int64_t> counts = CountsOf(sweep.counts);
          for (size_t i = 0; i < 6; ++i) totals[i] += counts[i];
        }
        std::vector<Sample> samples;
        for (size_t i = 0; i < 6; ++i) {
          samples.push_back({{kStates[i]}, static_cast<double>(totals[i])});
        }
        return samples;
      }));
  LORA_RETURN_IF_ERROR(registry_->AddCallbackGauge(
      "lora_sweep_runs", "Runs by state per sweep.", {"sweep", "state"},
      [coordinator, retention_ms] {
        std::vector<Sample> samples;
        for (const SweepRecord& sweep : ExportedSweeps(
                 coordinator->store(), coordinator->NowMs(), retention_ms)) {
          std::vector<int64_t> counts = CountsOf(sweep.counts);
          for (size_t i = 0; i < 6; ++i) {
            samples.push_back(
                {{sweep.name, kStates[i]}, static_cast<double>(counts[i])});
          }
        }
        return samples;
      }));
  LORA_RETURN_IF_ERROR(registry_->AddCallbackGauge(
      "lora_queue_depth", "Runs waiting for a worker (PENDING).", {},
      [coordinator, retention_ms] {
        double pending = 0;
        for (const SweepRecord& sweep : ExportedSweeps(
                 coordinator->store(), coordinator->NowMs(), retention_ms)) {
          pending += static_cast<double>(sweep.counts.pending);
        }
        return std::vector<Sample>{{{}, pending}};
      }));
  LORA_RETURN_IF_ERROR(registry_->AddCallbackGauge(
      "lora_workers_connected",
      "Workers whose last heartbeat is within one lease TTL.", {},
      [coordinator] {
        double up = 0;
        const int64_t now = coordinator->NowMs();
        for (const WorkerState& worker : coordinator->Workers()) {
          if (WorkerUp(worker.record.last_heartbeat_ms, now,
                       coordinator->options().timing)) {
            ++up;
          }
        }
        return std::vector<Sample>{{{}, up}};
      }));
  LORA_RETURN_IF_ERROR(registry_->AddCallbackGauge(
      "lora_stalled_runs",
      "RUNNING runs whose step has not advanced for the stall period, per "
      "sweep.",
      {"sweep"}, [coordinator, retention_ms] {
        std::map<std::string, int64_t> stalled = coordinator->StalledBySweep();
        std::vector<Sample> samples;
        for (const SweepRecord& sweep : ExportedSweeps(
                 coordinator->store(), coordinator->NowMs(), retention_ms)) {
          auto found = stalled.find(sweep.sweep_id);
          samples.push_back({{sweep.name},
                             found == stalled.end()
                                 ? 0.0
                                 : static_cast<double>(found->second)});
        }
        return samples;
      }));

  // The ablation cells, computed once per scrape and shared by the three
  // families below through a small cache keyed by the scrape time.
  auto cells = [coordinator, retention_ms] {
    std::map<std::tuple<std::string, std::string, std::string, std::string>,
             Cell>
        result;
    for (const SweepRecord& sweep : ExportedSweeps(
             coordinator->store(), coordinator->NowMs(), retention_ms)) {
      RunFilter filter;
      filter.sweep_id = sweep.sweep_id;
      filter.limit = std::max<int64_t>(1, sweep.counts.total());
      absl::StatusOr<std::vector<RunRecord>> runs =
          coordinator->store()->ListRuns(filter);
      if (!runs.ok()) continue;
      for (const RunRecord& run : *runs) {
        absl::StatusOr<core::TrainConfig> config =
            core::ParseTrainConfig(run.config_yaml, run.run_id);
        if (!config.ok()) continue;
        const bool lora = config->trainable == core::TrainableSet::kLora;
        Cell& cell = result[{sweep.name, config->model,
                             lora ? Number(config->lora.rank) : "none",
                             lora ? Number(config->lora.alpha) : "none"}];
        cell.trainable = std::max(cell.trainable, run.counts.trainable);
        if (run.best_metric && !std::isnan(*run.best_metric)) {
          cell.best.push_back(*run.best_metric);
        }
        absl::StatusOr<std::vector<MetricRecord>> loss =
            coordinator->store()->ReadMetricSeries(run.run_id, "train_loss");
        if (loss.ok() && !loss->empty()) {
          cell.loss.push_back(loss->back().point.value);
        }
      }
    }
    return result;
  };
  auto stat_samples = [cells](bool best) {
    std::vector<Sample> samples;
    for (const auto& [key, cell] : cells()) {
      const std::vector<double>& values = best ? cell.best : cell.loss;
      if (values.empty()) continue;
      double sum = 0;
      for (double v : values) sum += v;
      const auto& [sweep, model, rank, alpha] = key;
      samples.push_back(
          {{sweep, model, rank, alpha, "mean"}, sum / values.size()});
      samples.push_back({{sweep, model, rank, alpha, "max"},
                         *std::max_element(values.begin(), values.end())});
    }
    return samples;
  };
  LORA_RETURN_IF_ERROR(registry_->AddCallbackGauge(
      "lora_sweep_best_metric",
      "Best value of the sweep's metric so far, mean and max over the runs "
      "(seeds) of a (sweep, model, rank, alpha) cell.",
      {"sweep", "model", "rank", "alpha", "stat"},
      [stat_samples] { return stat_samples(true); }));
  LORA_RETURN_IF_ERROR(registry_->AddCallbackGauge(
      "lora_sweep_latest_loss",
      "Latest training loss, mean and max over the runs (seeds) of a "
      "(sweep, model, rank, alpha) cell.",
      {"sweep", "model", "rank", "alpha", "stat"},
      [stat_samples] { return stat_samples(false); }));
  LORA_RETURN_IF_ERROR(registry_->AddCallbackGauge(
      "lora_sweep_trainable_parameters",
      "Trainable parameters of a (sweep, model, rank, alpha) cell.",
      {"sweep", "model", "rank", "alpha"}, [cells] {
        std::vector<Sample> samples;
        for (const auto& [key, cell] : cells()) {
          const auto& [sweep, model, rank, alpha] = key;
          samples.push_back({{sweep, model, rank, alpha},
                             static_cast<double>(cell.trainable)});
        }
        return samples;
      }));
  return absl::OkStatus();
}

}  // namespace lora::coordinator
