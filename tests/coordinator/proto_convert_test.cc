// Records <-> lora.v1 messages, and the structured sweep spec, which must
// mean exactly what the same sweep file means.
#include "coordinator/proto_convert.h"

#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sweep/sweep_spec.h"

namespace lora::coordinator {
namespace {

google::protobuf::Value Number(double value) {
  google::protobuf::Value out;
  out.set_number_value(value);
  return out;
}

google::protobuf::Value String(const std::string& value) {
  google::protobuf::Value out;
  out.set_string_value(value);
  return out;
}

TEST(ProtoConvertTest, StructuredSpecMeansWhatTheSweepFileMeans) {
  v1::SweepSpec spec;
  spec.set_name("rank-ablation");
  spec.set_model("roberta-tiny");
  spec.set_task("polarity");
  spec.set_method(v1::SEARCH_METHOD_GRID);
  auto* ranks = (*spec.mutable_parameters())["lora.rank"].mutable_values();
  for (double r : {1, 2, 4}) *ranks->add_values() = Number(r);
  auto* seeds = (*spec.mutable_parameters())["seed"].mutable_values();
  for (double s : {0, 1}) *seeds->add_values() = Number(s);
  (*spec.mutable_fixed())["lr"] = Number(5e-4);
  google::protobuf::Value targets;
  *targets.mutable_list_value()->add_values() = String("query");
  *targets.mutable_list_value()->add_values() = String("value");
  (*spec.mutable_fixed())["lora.target_modules"] = targets;
  spec.set_max_attempts(2);
  spec.mutable_metric()->set_name("val_accuracy");
  spec.mutable_metric()->set_goal(v1::METRIC_GOAL_MAXIMIZE);
  absl::StatusOr<std::string> yaml = SweepSpecToYaml(spec);
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  const sweep::SweepValidationOptions options = sweep::LocalValidationOptions();
  absl::StatusOr<sweep::ExpandedSweep> from_struct =
      sweep::LoadSweep(*yaml, "spec_struct", options);
  ASSERT_TRUE(from_struct.ok()) << from_struct.status() << "\n" << *yaml;
  absl::StatusOr<sweep::ExpandedSweep> from_file = sweep::LoadSweep(
      R"(name: rank-ablation
model: roberta-tiny
task: polarity
parameters: {lora.rank: [1, 2, 4], seed: [0, 1]}
fixed: {lr: 5.0e-4, lora.target_modules: [query, value]}
max_attempts: 2
metric: {name: val_accuracy, goal: maximize}
)",
      "sweep.yaml", options);
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  EXPECT_EQ(from_struct->runs.size(), 6u);
  // The proto map orders keys, so runs may come in another order; the set
  // of runs and so the trained configs must be the same.
  std::set<std::string> a, b;
  for (const auto& run : from_struct->runs) a.insert(run.config_hash);
  for (const auto& run : from_file->runs) b.insert(run.config_hash);
  EXPECT_EQ(a, b);
}

TEST(ProtoConvertTest, RandomRangesAndResourcesCarryOver) {
  v1::SweepSpec spec;
  spec.set_name("random");
  spec.set_model("roberta-tiny");
  spec.set_task("polarity");
  spec.set_method(v1::SEARCH_METHOD_RANDOM);
  spec.set_count(5);
  spec.set_random_seed(3);
  v1::NumericRange& lr = *(*spec.mutable_parameters())["lr"].mutable_range();
  lr.set_min(1e-5);
  lr.set_max(1e-2);
  lr.set_log_scale(true);
  spec.mutable_resources()->set_cpu_threads(4);
  absl::StatusOr<std::string> yaml = SweepSpecToYaml(spec);
  ASSERT_TRUE(yaml.ok());
  absl::StatusOr<sweep::ExpandedSweep> sweep =
      sweep::LoadSweep(*yaml, "spec_struct", sweep::LocalValidationOptions());
  ASSERT_TRUE(sweep.ok()) << sweep.status() << "\n" << *yaml;
  EXPECT_EQ(sweep->runs.size() + sweep->duplicates_dropped, 5u);
  EXPECT_TRUE(sweep->spec.parameters[0].range->log_scale);
  EXPECT_EQ(sweep->runs[0].config.threads, 4);
  spec.set_method(static_cast<v1::SearchMethod>(42));
  EXPECT_FALSE(SweepSpecToYaml(spec).ok());
}

TEST(ProtoConvertTest, TimestampsRoundTrip) {
  EXPECT_EQ(FromTimestamp(ToTimestamp(1'700'000'123'456)), 1'700'000'123'456);
}

}  // namespace
}  // namespace lora::coordinator
