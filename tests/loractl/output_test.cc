// --output formats (loractl/output.h) and display helpers
// (loractl/display.h).
#include "loractl/output.h"

#include <yaml-cpp/yaml.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lora/v1/sweep_service.pb.h"
#include "loractl/display.h"

namespace lora::loractl {
namespace {

using ::testing::HasSubstr;

TEST(TextTableTest, AlignsColumnsAndUpperCasesHeaders) {
  TextTable table;
  table.header = {"name", "count"};
  table.align = "lr";
  table.rows = {{"a", "1"}, {"longer", "1,000"}};
  EXPECT_EQ(table.Render(),
            "NAME     COUNT\n"
            "a            1\n"
            "longer   1,000\n");
}

TEST(ProtoToJsonTest, SnakeCaseEveryFieldAndInt64AsNumbers) {
  v1::Run run;
  run.set_run_id("run-1");
  run.set_step(int64_t{1} << 40);
  run.mutable_parameter_counts()->set_total(124645632);
  run.set_state(v1::RUN_STATE_RUNNING);
  const nlohmann::json json = ProtoToJson(run);
  EXPECT_EQ(json["run_id"], "run-1");
  EXPECT_EQ(json["step"], int64_t{1} << 40);
  EXPECT_EQ(json["parameter_counts"]["total"], 124645632);
  EXPECT_EQ(json["state"], "RUN_STATE_RUNNING");
  EXPECT_EQ(json["attempt"], 0);  // printed although zero
  EXPECT_TRUE(json.contains("adapter_artifact_id"));
}

TEST(JsonToYamlTest, ReadsBackToTheSameValues) {
  const nlohmann::json value = {
      {"name", "true"}, {"count", 3},           {"lr", 0.0005},
      {"empty", ""},    {"list", {1, 2}},       {"none", nullptr},
      {"flag", false},  {"number_text", "1e5"}, {"nested", {{"a", "b"}}}};
  const std::string yaml = JsonToYaml(value);
  EXPECT_THAT(yaml, HasSubstr("lr: 0.0005\n"));
  const YAML::Node node = YAML::Load(yaml);
  EXPECT_EQ(node["name"].as<std::string>(), "true");
  EXPECT_EQ(node["name"].Tag(), "!");  // quoted, so a string
  EXPECT_EQ(node["count"].as<int>(), 3);
  EXPECT_DOUBLE_EQ(node["lr"].as<double>(), 0.0005);
  EXPECT_EQ(node["empty"].as<std::string>(), "");
  EXPECT_EQ(node["list"][1].as<int>(), 2);
  EXPECT_TRUE(node["none"].IsNull());
  EXPECT_FALSE(node["flag"].as<bool>());
  EXPECT_EQ(node["number_text"].Tag(), "!");
  EXPECT_EQ(node["nested"]["a"].as<std::string>(), "b");
}

TEST(DisplayTest, Formats) {
  EXPECT_EQ(FormatCount(124645632), "124,645,632");
  EXPECT_EQ(FormatCount(999), "999");
  EXPECT_EQ(FormatCount(-1000), "-1,000");
  EXPECT_EQ(FormatMetric("val_accuracy", 0.9312), "93.12%");
  EXPECT_EQ(FormatMetric("val_loss", 0.28504), "0.2850");
  EXPECT_EQ(MetricTitle("val_accuracy"), "Val Accuracy");
  EXPECT_EQ(HumanDuration(absl::Seconds(3725)), "1h02m");
  EXPECT_EQ(HumanDuration(absl::Seconds(185)), "3m05s");
  EXPECT_EQ(HumanDuration(absl::Seconds(42)), "42s");
  EXPECT_EQ(FormatExact(0.0005), "0.0005");
  EXPECT_EQ(FormatExact(4), "4");
  EXPECT_EQ(std::stod(FormatExact(0.1 + 0.2)), 0.1 + 0.2);
  EXPECT_EQ(*ParseRunState("failed"), v1::RUN_STATE_FAILED);
  EXPECT_EQ(*ParseRunState("RUN_STATE_PENDING"), v1::RUN_STATE_PENDING);
  EXPECT_FALSE(ParseRunState("unspecified").ok());
  EXPECT_FALSE(ParseRunState("done").ok());
  google::protobuf::Map<std::string, google::protobuf::Value> params;
  params["seed"].set_number_value(1);
  params["lora.rank"].set_number_value(4);
  params["lr"].set_number_value(5e-4);
  params["lora.target_modules"]
      .mutable_list_value()
      ->add_values()
      ->set_string_value("query");
  EXPECT_EQ(FormatParameters(params),
            "lora.rank=4 lora.target_modules=[query] lr=0.0005 seed=1");
}

}  // namespace
}  // namespace lora::loractl
