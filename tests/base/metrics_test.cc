#include "base/metrics.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lora::metrics {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

template <typename T>
T Ok(absl::StatusOr<T> result) {
  EXPECT_TRUE(result.ok()) << result.status();
  return *std::move(result);
}

TEST(MetricsTest, CounterFamilyExpositionListsChildrenByLabelValues) {
  Registry registry;
  auto started = Ok(registry.AddCounter("lora_runs_started_total",
                                        "Runs started.", {"sweep", "model"}));
  started->WithLabels({"sst2", "roberta"})->Increment(2);
  started->WithLabels({"cola", "roberta"})->Increment();
  started->WithLabels({"sst2", "bert"})->Increment(0.5);
  EXPECT_EQ(registry.Exposition(),
            R"(# HELP lora_runs_started_total Runs started.
# TYPE lora_runs_started_total counter
lora_runs_started_total{sweep="cola",model="roberta"} 1
lora_runs_started_total{sweep="sst2",model="bert"} 0.5
lora_runs_started_total{sweep="sst2",model="roberta"} 2
)");
}

TEST(MetricsTest, FamiliesAreSortedByNameAndUnlabelledOnesStartAtZero) {
  Registry registry;
  auto workers = Ok(registry.AddGauge("lora_workers", "Connected workers."));
  Ok(registry.AddCounter("lora_api_errors_total", "API errors."));
  auto queue =
      Ok(registry.AddGauge("lora_queue_depth", "Pending runs.", {"priority"}));
  workers->WithLabels({})->Set(5);
  workers->WithLabels({})->Add(2.5);
  workers->WithLabels({})->Sub(0.5);
  workers->WithLabels({})->Increment();
  workers->WithLabels({})->Decrement();
  workers->WithLabels({})->Decrement();
  queue->WithLabels({"high"})->Set(-3);
  EXPECT_EQ(registry.Exposition(),
            R"(# HELP lora_api_errors_total API errors.
# TYPE lora_api_errors_total counter
lora_api_errors_total 0
# HELP lora_queue_depth Pending runs.
# TYPE lora_queue_depth gauge
lora_queue_depth{priority="high"} -3
# HELP lora_workers Connected workers.
# TYPE lora_workers gauge
lora_workers 6
)");
}

TEST(MetricsTest, LabelledFamilyWithoutChildrenExportsNothing) {
  Registry registry;
  Ok(registry.AddCounter("lora_x_total", "X.", {"sweep"}));
  EXPECT_EQ(registry.Exposition(), "");
}

TEST(MetricsTest, EmptyHelpOmitsTheHelpLine) {
  Registry registry;
  Ok(registry.AddGauge("lora_g", ""));
  EXPECT_EQ(registry.Exposition(), "# TYPE lora_g gauge\nlora_g 0\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithSumAndCount) {
  Registry registry;
  auto steps = Ok(registry.AddHistogram("lora_step_seconds", "Step time.",
                                        {"sweep"}, {0.25, 0.5, 1}));
  std::shared_ptr<Histogram> a = steps->WithLabels({"a"});
  for (double v : {0.125, 0.25, 0.5, 0.75, 2.0}) a->Observe(v);
  steps->WithLabels({"b"})->Observe(0.3);
  EXPECT_EQ(registry.Exposition(),
            R"(# HELP lora_step_seconds Step time.
# TYPE lora_step_seconds histogram
lora_step_seconds_bucket{sweep="a",le="0.25"} 2
lora_step_seconds_bucket{sweep="a",le="0.5"} 3
lora_step_seconds_bucket{sweep="a",le="1"} 4
lora_step_seconds_bucket{sweep="a",le="+Inf"} 5
lora_step_seconds_sum{sweep="a"} 3.625
lora_step_seconds_count{sweep="a"} 5
lora_step_seconds_bucket{sweep="b",le="0.25"} 0
lora_step_seconds_bucket{sweep="b",le="0.5"} 1
lora_step_seconds_bucket{sweep="b",le="1"} 1
lora_step_seconds_bucket{sweep="b",le="+Inf"} 1
lora_step_seconds_sum{sweep="b"} 0.3
lora_step_seconds_count{sweep="b"} 1
)");
  Histogram::Snapshot snapshot = a->GetSnapshot();
  EXPECT_THAT(snapshot.upper_bounds, ElementsAre(0.25, 0.5, 1));
  EXPECT_THAT(snapshot.cumulative_counts, ElementsAre(2, 3, 4, 5));
  EXPECT_EQ(snapshot.count, 5u);
  EXPECT_EQ(snapshot.sum, 3.625);
}

TEST(MetricsTest, UnlabelledHistogramHasOnlyLeLabel) {
  Registry registry;
  auto sizes = Ok(registry.AddHistogram("lora_batch_bytes", "Batch size.", {},
                                        {1000, 1e6, kInf}));
  sizes->WithLabels({})->Observe(4096);
  EXPECT_EQ(registry.Exposition(),
            R"(# HELP lora_batch_bytes Batch size.
# TYPE lora_batch_bytes histogram
lora_batch_bytes_bucket{le="1000"} 0
lora_batch_bytes_bucket{le="1000000"} 1
lora_batch_bytes_bucket{le="+Inf"} 1
lora_batch_bytes_sum 4096
lora_batch_bytes_count 1
)");
}

TEST(MetricsTest, HistogramWithNoBoundsHasOnlyTheInfBucket) {
  Registry registry;
  auto h = Ok(registry.AddHistogram("lora_h", "H.", {}, {}));
  h->WithLabels({})->Observe(-7);
  EXPECT_EQ(registry.Exposition(), R"(# HELP lora_h H.
# TYPE lora_h histogram
lora_h_bucket{le="+Inf"} 1
lora_h_sum -7
lora_h_count 1
)");
}

TEST(MetricsTest, HistogramCountsNanInInfBucketAndInfinitiesAtTheEnds) {
  Registry registry;
  auto h = Ok(registry.AddHistogram("lora_h", "H.", {}, {0, 1}));
  std::shared_ptr<Histogram> child = h->WithLabels({});
  child->Observe(-kInf);
  child->Observe(kInf);
  child->Observe(kNaN);
  Histogram::Snapshot snapshot = child->GetSnapshot();
  EXPECT_THAT(snapshot.cumulative_counts, ElementsAre(1, 1, 3));
  EXPECT_TRUE(std::isnan(snapshot.sum));
  EXPECT_THAT(registry.Exposition(), HasSubstr("lora_h_sum NaN\n"));
}

TEST(MetricsTest, HelpAndLabelValuesAreEscaped) {
  Registry registry;
  auto family = Ok(registry.AddGauge(
      "lora_escapes", "Path C:\\runs\nsecond \"line\" \xC3\xBC", {"value"}));
  family->WithLabels({"back\\slash \"quoted\"\nnext"})->Set(1);
  family->WithLabels({"\xCE\xB1\xCE\xB2 \xF0\x9F\x9A\x80"})->Set(2);
  EXPECT_EQ(registry.Exposition(),
            "# HELP lora_escapes Path C:\\\\runs\\nsecond \"line\" \xC3\xBC\n"
            "# TYPE lora_escapes gauge\n"
            "lora_escapes{value=\"back\\\\slash \\\"quoted\\\"\\nnext\"} 1\n"
            "lora_escapes{value=\"\xCE\xB1\xCE\xB2 \xF0\x9F\x9A\x80\"} 2\n");
}

TEST(MetricsTest, InvalidUtf8LabelValuesAreReplacedAndShareOneChild) {
  Registry registry;
  auto family = Ok(registry.AddCounter("lora_c_total", "C.", {"v"}));
  std::shared_ptr<Counter> first = family->WithLabels({"a\xFFz"});
  std::shared_ptr<Counter> second = family->WithLabels({"a\xFEz"});
  EXPECT_EQ(first, second);
  first->Increment();
  EXPECT_THAT(registry.Exposition(),
              HasSubstr("lora_c_total{v=\"a\xEF\xBF\xBDz\"} 1\n"));
  EXPECT_TRUE(family->Remove({"a\xFFz"}));
}

TEST(MetricsTest, HelpMustBeUtf8) {
  Registry registry;
  absl::StatusOr<std::shared_ptr<GaugeFamily>> result =
      registry.AddGauge("lora_g", "bad \xC0\x80");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MetricsTest, FormatValueFollowsPrometheusConventions) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(-0.0), "0");
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(-3), "-3");
  EXPECT_EQ(FormatValue(1e6), "1000000");
  EXPECT_EQ(FormatValue(9007199254740992.0), "9007199254740992");
  // Beyond 2^53: the shorter of plain digits and exponent form.
  EXPECT_EQ(FormatValue(18014398509481984.0), "18014398509481984");
  EXPECT_EQ(FormatValue(1.5e17), "1.5e+17");
  EXPECT_EQ(FormatValue(1e300), "1e+300");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(-1.5), "-1.5");
  EXPECT_EQ(FormatValue(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(FormatValue(2.5e-7), "2.5e-07");
  EXPECT_EQ(FormatValue(5e-324), "5e-324");
  EXPECT_EQ(FormatValue(kNaN), "NaN");
  EXPECT_EQ(FormatValue(kInf), "+Inf");
  EXPECT_EQ(FormatValue(-kInf), "-Inf");
  for (double v :
       {0.1, 1.0 / 3, 2.5e-7, 123456.789, 1e-300, 1.7976931348623157e308}) {
    EXPECT_EQ(std::stod(FormatValue(v)), v) << FormatValue(v);
  }
}

TEST(MetricsTest, SpecialGaugeValuesAreWrittenAsPrometheusSpells) {
  Registry registry;
  auto family = Ok(registry.AddGauge("lora_loss", "Loss.", {"split"}));
  family->WithLabels({"a"})->Set(kNaN);
  family->WithLabels({"b"})->Set(kInf);
  family->WithLabels({"c"})->Set(-kInf);
  family->WithLabels({"d"})->Set(1e-9);
  EXPECT_EQ(registry.Exposition(), R"(# HELP lora_loss Loss.
# TYPE lora_loss gauge
lora_loss{split="a"} NaN
lora_loss{split="b"} +Inf
lora_loss{split="c"} -Inf
lora_loss{split="d"} 1e-09
)");
}

TEST(MetricsTest, CounterIgnoresNegativeAndNanIncrements) {
  Counter counter;
  counter.Increment(3);
  counter.Increment(-1);
  counter.Increment(kNaN);
  counter.Increment();
  EXPECT_EQ(counter.Value(), 4);
}

TEST(MetricsTest, MetricNamesAreValidated) {
  Registry registry;
  for (const char* bad : {"", "1abc", "a-b", "a b", "a.b", "\xC3\xBC"}) {
    absl::StatusOr<std::shared_ptr<CounterFamily>> result =
        registry.AddCounter(bad, "x");
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  absl::StatusOr<std::shared_ptr<CounterFamily>> bad =
      registry.AddCounter("lora-runs", "x");
  EXPECT_THAT(bad.status().message(), HasSubstr("\"lora-runs\""));
  for (const char* good : {"a", "_a", ":a", "a:b_c9", "lora_Runs_total"}) {
    EXPECT_TRUE(registry.AddCounter(good, "x").ok()) << good;
  }
}

TEST(MetricsTest, LabelNamesAreValidated) {
  Registry registry;
  for (const char* bad : {"", "1a", "a:b", "a-b", "__name", "__"}) {
    absl::StatusOr<std::shared_ptr<GaugeFamily>> result =
        registry.AddGauge("lora_g", "x", {"ok", bad});
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  absl::StatusOr<std::shared_ptr<GaugeFamily>> twice =
      registry.AddGauge("lora_g", "x", {"sweep", "sweep"});
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(twice.status().message(), HasSubstr("\"sweep\""));
  EXPECT_TRUE(registry.AddGauge("lora_g", "x", {"_a", "b_9", "le"}).ok());
}

TEST(MetricsTest, HistogramRejectsLeLabelAndBadBounds) {
  Registry registry;
  EXPECT_EQ(registry.AddHistogram("lora_h", "x", {"le"}, {1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  for (const std::vector<double>& bounds : std::vector<std::vector<double>>{
           {2, 1}, {1, 1}, {kNaN}, {1, kNaN, 2}, {-kInf, 1}, {kInf, 1}}) {
    absl::StatusOr<std::shared_ptr<HistogramFamily>> result =
        registry.AddHistogram("lora_h", "x", {}, bounds);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument)
        << result.status();
  }
  auto ok = Ok(registry.AddHistogram("lora_h", "x", {}, {-1, 0, kInf}));
  EXPECT_THAT(ok->upper_bounds(), ElementsAre(-1, 0));
}

TEST(MetricsTest, IdenticalRegistrationReturnsTheExistingFamily) {
  Registry registry;
  auto first = Ok(registry.AddCounter("lora_c_total", "C.", {"sweep"}));
  auto second = Ok(registry.AddCounter("lora_c_total", "C.", {"sweep"}));
  EXPECT_EQ(first, second);
  auto h1 = Ok(registry.AddHistogram("lora_h", "H.", {}, {1, 2}));
  auto h2 = Ok(registry.AddHistogram("lora_h", "H.", {}, {1, 2, kInf}));
  EXPECT_EQ(h1, h2);
}

TEST(MetricsTest, ConflictingRegistrationIsAlreadyExists) {
  Registry registry;
  Ok(registry.AddCounter("lora_c_total", "C.", {"sweep"}));
  Ok(registry.AddHistogram("lora_h", "H.", {}, {1, 2}));
  const std::vector<absl::Status> conflicts = {
      registry.AddCounter("lora_c_total", "Other help.", {"sweep"}).status(),
      registry.AddCounter("lora_c_total", "C.", {"model"}).status(),
      registry.AddCounter("lora_c_total", "C.").status(),
      registry.AddGauge("lora_c_total", "C.", {"sweep"}).status(),
      registry.AddHistogram("lora_h", "H.", {}, {1, 3}).status(),
      // Names the histogram exposes.
      registry.AddCounter("lora_h_count", "x").status(),
      registry.AddGauge("lora_h_bucket", "x").status(),
  };
  for (const absl::Status& status : conflicts) {
    EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  }
  EXPECT_THAT(conflicts[0].message(), HasSubstr("Other help."));
  EXPECT_THAT(conflicts[4].message(), HasSubstr("{1,2}"));
  EXPECT_THAT(conflicts[5].message(), HasSubstr("\"lora_h\""));

  Ok(registry.AddGauge("lora_x_sum", "x"));
  EXPECT_EQ(registry.AddHistogram("lora_x", "x", {}, {1}).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(MetricsTest, UnregisterFreesTheNamesAndDropsTheFamily) {
  Registry registry;
  auto h = Ok(registry.AddHistogram("lora_h", "H.", {}, {1}));
  EXPECT_TRUE(registry.Unregister("lora_h"));
  EXPECT_FALSE(registry.Unregister("lora_h"));
  EXPECT_EQ(registry.Exposition(), "");
  h->WithLabels({})->Observe(1);  // still safe to use
  auto counter = Ok(registry.AddCounter("lora_h_count", "Now a counter."));
  EXPECT_NE(registry.Exposition().find("lora_h_count 0"), std::string::npos);
}

TEST(MetricsTest, RemovedChildDisappearsAndComesBackAtZero) {
  Registry registry;
  auto family = Ok(registry.AddCounter("lora_c_total", "C.", {"sweep"}));
  std::shared_ptr<Counter> old = family->WithLabels({"done"});
  old->Increment(5);
  family->WithLabels({"live"})->Increment();
  EXPECT_EQ(family->size(), 2u);

  EXPECT_TRUE(family->Remove({"done"}));
  EXPECT_FALSE(family->Remove({"done"}));
  EXPECT_FALSE(family->Remove({"never"}));
  EXPECT_EQ(family->size(), 1u);
  const std::string text = registry.Exposition();
  EXPECT_THAT(text, Not(HasSubstr("done")));
  EXPECT_THAT(text, HasSubstr("lora_c_total{sweep=\"live\"} 1\n"));

  old->Increment();  // the handle stays valid, just unexported
  EXPECT_EQ(old->Value(), 6);
  std::shared_ptr<Counter> fresh = family->WithLabels({"done"});
  EXPECT_NE(fresh, old);
  EXPECT_EQ(fresh->Value(), 0);
}

TEST(MetricsTest, ClearRemovesEveryChild) {
  Registry registry;
  auto family = Ok(registry.AddGauge("lora_g", "G.", {"sweep"}));
  family->WithLabels({"a"})->Set(1);
  family->WithLabels({"b"})->Set(2);
  family->Clear();
  EXPECT_EQ(family->size(), 0u);
  EXPECT_EQ(registry.Exposition(), "");
  family->WithLabels({"c"})->Set(3);
  EXPECT_EQ(registry.Exposition(),
            "# HELP lora_g G.\n# TYPE lora_g gauge\nlora_g{sweep=\"c\"} 3\n");
}

TEST(MetricsTest, WithLabelsReturnsTheSameChildForTheSameValues) {
  Registry registry;
  auto family = Ok(registry.AddGauge("lora_g", "G.", {"a", "b"}));
  EXPECT_EQ(family->WithLabels({"x", "y"}), family->WithLabels({"x", "y"}));
  EXPECT_NE(family->WithLabels({"x", "y"}), family->WithLabels({"y", "x"}));
}

TEST(MetricsDeathTest, WithLabelsAbortsOnWrongNumberOfValues) {
  Registry registry;
  auto family = Ok(registry.AddGauge("lora_g", "G.", {"a", "b"}));
  EXPECT_DEATH(family->WithLabels({"only-one"}),
               "lora_g\\{a,b\\} takes 2 label values, WithLabels got 1");
}

TEST(MetricsTest, CallbackGaugeIsEvaluatedAtEachScrape) {
  Registry registry;
  int calls = 0;
  ASSERT_TRUE(registry
                  .AddCallbackGauge("lora_runs", "Runs by state.", {"state"},
                                    [&calls] {
                                      ++calls;
                                      return std::vector<Sample>{
                                          {{"running"}, 2.0 + calls},
                                          {{"pending"}, 7},
                                          {{"too", "many"}, 1},  // dropped
                                          {{"failed"}, 1},
                                          {{"failed"}, 3},  // last one wins
                                      };
                                    })
                  .ok());
  EXPECT_EQ(registry.Exposition(), R"(# HELP lora_runs Runs by state.
# TYPE lora_runs gauge
lora_runs{state="failed"} 3
lora_runs{state="pending"} 7
lora_runs{state="running"} 3
)");
  EXPECT_THAT(registry.Exposition(),
              HasSubstr("lora_runs{state=\"running\"} 4\n"));
  EXPECT_EQ(calls, 2);
}

TEST(MetricsTest, CallbackCounterAndEmptyCallback) {
  Registry registry;
  ASSERT_TRUE(registry
                  .AddCallbackCounter("lora_done_total", "Done.", {},
                                      [] {
                                        return std::vector<Sample>{{{}, 9}};
                                      })
                  .ok());
  ASSERT_TRUE(registry
                  .AddCallbackGauge("lora_empty", "Nothing.", {"x"},
                                    [] { return std::vector<Sample>{}; })
                  .ok());
  EXPECT_EQ(registry.Exposition(), R"(# HELP lora_done_total Done.
# TYPE lora_done_total counter
lora_done_total 9
)");
}

TEST(MetricsTest, CallbackFamiliesCannotBeRegisteredTwice) {
  Registry registry;
  auto callback = [] { return std::vector<Sample>{}; };
  ASSERT_TRUE(registry.AddCallbackGauge("lora_runs", "R.", {}, callback).ok());
  EXPECT_EQ(registry.AddCallbackGauge("lora_runs", "R.", {}, callback).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.AddGauge("lora_runs", "R.").status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(
      registry.AddCallbackGauge("lora_other", "R.", {"__bad"}, callback).code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(MetricsTest, UnregisteredCallbackIsNeverCalledAgain) {
  Registry registry;
  auto calls = std::make_shared<int>(0);
  ASSERT_TRUE(registry
                  .AddCallbackGauge("lora_runs", "R.", {},
                                    [calls] {
                                      ++*calls;
                                      return std::vector<Sample>{{{}, 1}};
                                    })
                  .ok());
  registry.Exposition();
  EXPECT_TRUE(registry.Unregister("lora_runs"));
  EXPECT_EQ(registry.Exposition(), "");
  EXPECT_EQ(*calls, 1);
  // The callback (and what it captured) was released on Unregister.
  EXPECT_EQ(calls.use_count(), 1);
}

TEST(MetricsTest, CallbackMayUseTheRegistry) {
  Registry registry;
  auto counter = Ok(registry.AddCounter("lora_a_total", "A."));
  ASSERT_TRUE(
      registry
          .AddCallbackGauge("lora_b", "B.", {},
                            [&registry, counter] {
                              counter->WithLabels({})->Increment();
                              // Registration from a callback must not
                              // deadlock.
                              registry.AddGauge("lora_c", "C.").IgnoreError();
                              return std::vector<Sample>{{{}, 1}};
                            })
          .ok());
  EXPECT_THAT(registry.Exposition(), HasSubstr("lora_b 1\n"));
  EXPECT_THAT(registry.Exposition(), HasSubstr("lora_c 0\n"));
}

TEST(MetricsTest, ConcurrentUpdatesAreExact) {
  Registry registry;
  auto counters = Ok(registry.AddCounter("lora_c_total", "C.", {"thread"}));
  auto gauges = Ok(registry.AddGauge("lora_g", "G.", {}));
  auto histograms =
      Ok(registry.AddHistogram("lora_h", "H.", {"thread"}, {1, 10}));
  constexpr int kThreads = 8;
  constexpr int kIterations = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Lookups race with each other and with scrapes...
      std::shared_ptr<Counter> shared = counters->WithLabels({"shared"});
      std::shared_ptr<Counter> own =
          counters->WithLabels({absl::StrCat("t", t)});
      std::shared_ptr<Gauge> gauge = gauges->WithLabels({});
      std::shared_ptr<Histogram> shared_h = histograms->WithLabels({"shared"});
      // ...and the cached handles are hammered.
      for (int i = 0; i < kIterations; ++i) {
        shared->Increment();
        own->Increment(2);
        gauge->Add(1);
        gauge->Sub(0.5);
        shared_h->Observe(i % 3 == 0 ? 0.5 : 5);
        if (i % 5000 == 0) registry.Exposition();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  EXPECT_EQ(counters->size(), kThreads + 1u);
  EXPECT_EQ(counters->WithLabels({"shared"})->Value(), kThreads * kIterations);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(counters->WithLabels({absl::StrCat("t", t)})->Value(),
              2.0 * kIterations);
  }
  EXPECT_EQ(gauges->WithLabels({})->Value(), 0.5 * kThreads * kIterations);
  Histogram::Snapshot snapshot =
      histograms->WithLabels({"shared"})->GetSnapshot();
  const uint64_t small_per_thread = (kIterations + 2) / 3;
  EXPECT_THAT(
      snapshot.cumulative_counts,
      ElementsAre(kThreads * small_per_thread, uint64_t{kThreads} * kIterations,
                  uint64_t{kThreads} * kIterations));
  EXPECT_EQ(snapshot.sum, kThreads * (0.5 * small_per_thread +
                                      5.0 * (kIterations - small_per_thread)));
}

TEST(MetricsTest, ExponentialAndLinearBuckets) {
  EXPECT_THAT(
      Ok(ExponentialBuckets(0.001, 10, 4)),
      ElementsAre(0.001, 0.001 * 10, 0.001 * 10 * 10, 0.001 * 10 * 10 * 10));
  EXPECT_THAT(Ok(ExponentialBuckets(1, 2, 5)), ElementsAre(1, 2, 4, 8, 16));
  EXPECT_THAT(Ok(LinearBuckets(-1, 0.5, 4)), ElementsAre(-1, -0.5, 0, 0.5));
  for (const absl::Status& status :
       {ExponentialBuckets(0, 2, 3).status(),
        ExponentialBuckets(-1, 2, 3).status(),
        ExponentialBuckets(1, 1, 3).status(),
        ExponentialBuckets(1, 2, 0).status(),
        ExponentialBuckets(1, 1e300, 3).status(),  // overflows to +Inf
        ExponentialBuckets(kNaN, 2, 3).status(),
        LinearBuckets(0, 0, 3).status(), LinearBuckets(0, -1, 3).status(),
        LinearBuckets(0, 1, 0).status(), LinearBuckets(kInf, 1, 2).status(),
        LinearBuckets(1e300, 1, 2).status()}) {  // equal bounds
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  }
}

TEST(MetricsTest, ExponentialBucketsFeedAHistogram) {
  Registry registry;
  auto h = Ok(registry.AddHistogram("lora_h_seconds", "H.", {},
                                    Ok(ExponentialBuckets(0.5, 2, 3))));
  h->WithLabels({})->Observe(1.5);
  EXPECT_THAT(registry.Exposition(),
              HasSubstr("lora_h_seconds_bucket{le=\"0.5\"} 0\n"
                        "lora_h_seconds_bucket{le=\"1\"} 0\n"
                        "lora_h_seconds_bucket{le=\"2\"} 1\n"
                        "lora_h_seconds_bucket{le=\"+Inf\"} 1\n"));
}

TEST(MetricsTest, MetricTypeNames) {
  EXPECT_EQ(MetricTypeName(MetricType::kCounter), "counter");
  EXPECT_EQ(MetricTypeName(MetricType::kGauge), "gauge");
  EXPECT_EQ(MetricTypeName(MetricType::kHistogram), "histogram");
}

}  // namespace
}  // namespace lora::metrics
