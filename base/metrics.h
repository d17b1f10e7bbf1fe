// Prometheus metrics without prometheus-cpp (Debian 12 has none): counters,
// gauges and histograms grouped in labelled families, kept in a Registry and
// rendered in the text exposition format 0.0.4 that /metrics serves
// (base/metrics_http.h).
//
//   metrics::Registry registry;  // one per process, injected; no global
//   LORA_ASSIGN_OR_RETURN(
//       std::shared_ptr<metrics::CounterFamily> started,
//       registry.AddCounter("lora_runs_started_total", "Runs started.",
//                           {"sweep", "model"}));
//   // Look the child up once, off the hot path, and keep the handle:
//   std::shared_ptr<metrics::Counter> sst2 =
//       started->WithLabels({"sst2-rank", "roberta-base"});
//   sst2->Increment();  // hot path: atomic operations only
//
//   std::string text = registry.Exposition();
//
// Naming (house style): `lora_` prefix, base units (`_seconds`, `_bytes`),
// `_total` on counters, labels with bounded value sets. The library checks
// the syntax of names, not these conventions; `promtool check metrics` (see
// tests/base/metrics_promtool_test.cc) checks both.
#ifndef LORA_SWEEP_BASE_METRICS_H_
#define LORA_SWEEP_BASE_METRICS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace lora::metrics {

enum class MetricType { kCounter, kGauge, kHistogram };

// "counter", "gauge" or "histogram", as on a # TYPE line.
absl::string_view MetricTypeName(MetricType type);

// A monotonically increasing value: one child (label set) of a counter
// family. Thread-safe and lock-free; never allocates after construction.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Adds `amount`. Counters only go up: a negative or NaN amount is ignored
  // (a bug in the caller must not make a rate() go negative).
  void Increment(double amount = 1.0);

  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down: one child of a gauge family. Thread-safe
// and lock-free; never allocates after construction.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double amount);
  void Sub(double amount) { Add(-amount); }
  void Increment() { Add(1.0); }
  void Decrement() { Add(-1.0); }

  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Observations counted in buckets: one child of a histogram family.
// Observe() is thread-safe and lock-free and never allocates.
class Histogram {
 public:
  // A consistent-enough copy for exposition and tests.
  struct Snapshot {
    std::vector<double> upper_bounds;  // finite bounds, ascending; no +Inf
    // Cumulative: cumulative_counts[i] observations were <= upper_bounds[i];
    // the last element (index upper_bounds.size()) is the +Inf bucket and
    // equals `count`.
    std::vector<uint64_t> cumulative_counts;
    uint64_t count = 0;
    double sum = 0.0;
  };

  // `upper_bounds` must be valid (see Registry::AddHistogram); Registry
  // families create children, so user code rarely calls this.
  explicit Histogram(std::shared_ptr<const std::vector<double>> upper_bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Counts `value` in the first bucket whose bound is >= value (bounds are
  // inclusive, as Prometheus's `le` says) and adds it to the sum. NaN goes
  // to the +Inf bucket only and makes the sum NaN, as in client_golang.
  void Observe(double value);

  // Bucket counts are read one by one, not frozen together, so a snapshot
  // taken during concurrent Observe() calls may include an observation in
  // the counts but not yet in the sum. Counts are always cumulative and
  // `count` always equals the +Inf bucket.
  Snapshot GetSnapshot() const;

 private:
  std::shared_ptr<const std::vector<double>> upper_bounds_;
  // Per-bucket, not cumulative; upper_bounds_->size() + 1 entries.
  std::unique_ptr<std::atomic<uint64_t>[]> bucket_counts_;
  std::atomic<double> sum_{0.0};
};

// `count` bounds start, start*factor, start*factor^2, ... InvalidArgument
// unless start > 0, factor > 1 and count >= 1 (and the bounds stay finite).
absl::StatusOr<std::vector<double>> ExponentialBuckets(double start,
                                                       double factor,
                                                       int count);

// `count` bounds start, start+width, start+2*width, ... InvalidArgument
// unless width > 0 and count >= 1 (and the bounds stay finite).
absl::StatusOr<std::vector<double>> LinearBuckets(double start, double width,
                                                  int count);

// `value` as the exposition format writes sample values and `le` labels:
// "NaN", "+Inf", "-Inf"; integers of magnitude <= 2^53 in plain digits
// ("0", "-3", "1000000"); anything else in the shortest form that parses
// back to the same double ("0.1", "2.5e-07", "1e+300").
std::string FormatValue(double value);

// What every family has. Registry owns families through shared_ptr.
class FamilyBase {
 public:
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;
  virtual ~FamilyBase() = default;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

 protected:
  FamilyBase(std::string name, std::string help, MetricType type,
             std::vector<std::string> label_names);

 private:
  friend class Registry;

  // Appends this family's # HELP, # TYPE and sample lines to `out`; nothing
  // at all when the family has no samples.
  virtual void AppendExposition(std::string* out) const = 0;

  // Called once when the family leaves its registry.
  virtual void Detach() {}

  const std::string name_;
  const std::string help_;
  const MetricType type_;
  const std::vector<std::string> label_names_;
};

// A metric family: one child of type T (Counter, Gauge or Histogram) per
// label-value combination. Thread-safe.
template <typename T>
class Family final : public FamilyBase {
 public:
  // The child for `label_values`, given in the order of label_names(),
  // created at zero on first use. Repeated calls with the same values return
  // the same child, so look it up once and keep the handle: every operation
  // on the child is lock-free. Takes the family's lock and may allocate.
  //
  // Label values may be any string; bytes that are not valid UTF-8 are
  // replaced by U+FFFD (Prometheus requires UTF-8).
  //
  // A wrong number of values is a bug in the calling code (label names are
  // fixed where the family is registered), not a data error: it aborts the
  // process with a message naming the family.
  std::shared_ptr<T> WithLabels(const std::vector<std::string>& label_values);

  // Drops the child for `label_values` from the exposition; false when there
  // was none. Handles held elsewhere stay valid, but what they record is no
  // longer exported, and a later WithLabels() with the same values starts a
  // new child at zero.
  bool Remove(const std::vector<std::string>& label_values);

  // Removes every child (handles stay valid, as for Remove). A family without
  // labels then exports nothing until WithLabels({}) is called again.
  void Clear();

  // The number of children.
  size_t size() const;

  // A histogram family's finite bucket bounds, ascending (the +Inf bucket is
  // implicit); empty for counters and gauges.
  const std::vector<double>& upper_bounds() const;

 private:
  friend class Registry;

  Family(std::string name, std::string help, MetricType type,
         std::vector<std::string> label_names,
         std::shared_ptr<const std::vector<double>> upper_bounds);

  void AppendExposition(std::string* out) const override;
  std::shared_ptr<T> NewChild() const;

  // Histogram bounds (null for counters and gauges).
  const std::shared_ptr<const std::vector<double>> upper_bounds_;
  mutable absl::Mutex mu_;
  // Ordered, so the exposition lists children in a fixed order.
  std::map<std::vector<std::string>, std::shared_ptr<T>> children_
      ABSL_GUARDED_BY(mu_);
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

// One sample produced by a callback family at scrape time.
struct Sample {
  std::vector<std::string> label_values;  // in the family's label-name order
  double value = 0.0;
};

// Evaluated at each scrape, on the scraping thread, with no registry lock
// held. Must be thread-safe with respect to the state it reads.
using SampleCallback = std::function<std::vector<Sample>()>;

// A set of metric families rendered together. Thread-safe: registration,
// lookup, removal and exposition may run concurrently from any threads.
// Families hold no reference back to the registry.
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;
  ~Registry();

  // Registration. `name` must match [a-zA-Z_:][a-zA-Z0-9_:]*; each label
  // name must match [a-zA-Z_][a-zA-Z0-9_]*, must not start with "__" and
  // must not repeat; `help` must be valid UTF-8 (an empty help omits the
  // # HELP line). All of these are InvalidArgument, naming the bad value.
  //
  // Duplicates: registering the same name again with exactly the same type,
  // help, label names (and bucket bounds) returns the existing family, so
  // two components may declare a family they share. Any difference is
  // AlreadyExists, as is a clash of exposed sample names between families
  // (a histogram "x" exposes x_bucket, x_sum and x_count, so a counter
  // "x_count" clashes with it).
  //
  // A family without labels starts with its one child, so it is exported
  // (at zero) before it is first touched.
  absl::StatusOr<std::shared_ptr<CounterFamily>> AddCounter(
      absl::string_view name, absl::string_view help,
      std::vector<std::string> label_names = {});
  absl::StatusOr<std::shared_ptr<GaugeFamily>> AddGauge(
      absl::string_view name, absl::string_view help,
      std::vector<std::string> label_names = {});

  // `upper_bounds`: the finite bucket bounds, strictly increasing, no NaN;
  // a trailing +Inf is accepted and dropped, since the +Inf bucket is always
  // added. An empty list gives only the +Inf bucket. The label name "le" is
  // reserved here. InvalidArgument otherwise.
  absl::StatusOr<std::shared_ptr<HistogramFamily>> AddHistogram(
      absl::string_view name, absl::string_view help,
      std::vector<std::string> label_names, std::vector<double> upper_bounds);

  // Families whose samples come from `callback` at each scrape (e.g. runs by
  // state, read from the run store). Validation as above; a callback family
  // never equals another registration, so a second one with the same name
  // is AlreadyExists. At exposition, samples with the wrong number of label
  // values are dropped, duplicates of a label set keep the last one, and
  // samples are sorted by label values. Callbacks of one family never run
  // concurrently with each other. A callback must not call Unregister() on
  // its own family (it would wait for itself).
  absl::Status AddCallbackGauge(absl::string_view name, absl::string_view help,
                                std::vector<std::string> label_names,
                                SampleCallback callback);
  absl::Status AddCallbackCounter(absl::string_view name,
                                  absl::string_view help,
                                  std::vector<std::string> label_names,
                                  SampleCallback callback);

  // Removes the family `name` from the registry, freeing its names for a new
  // registration; false if there is none. Handles held elsewhere stay valid
  // but are no longer exported. For a callback family, when this returns
  // the callback is not running and never runs again, so its owner may be
  // destroyed.
  bool Unregister(absl::string_view name);

  // The text exposition format 0.0.4: for each family with samples, sorted
  // by name, `# HELP` (backslash and newline escaped), `# TYPE`, then its
  // samples, children ordered by label values. Label values are escaped
  // (backslash, double quote, newline). Histograms write cumulative
  // name_bucket{...,le="<bound>"} lines ending with le="+Inf", then
  // name_sum and name_count. No timestamps.
  std::string Exposition() const;

  // Appends the same text to `out`.
  void WriteExposition(std::string* out) const;

 private:
  // Checks `family` against the registered ones; registers it unless an
  // identical family exists, which is returned instead.
  absl::StatusOr<std::shared_ptr<FamilyBase>> Register(
      std::shared_ptr<FamilyBase> family);

  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<FamilyBase>, std::less<>> families_
      ABSL_GUARDED_BY(mu_);
  // Every name a family puts in the exposition (its own name and, for
  // histograms, the _bucket/_sum/_count names) -> that family's name.
  absl::flat_hash_map<std::string, std::string> exposed_names_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace lora::metrics

#endif  // LORA_SWEEP_BASE_METRICS_H_
