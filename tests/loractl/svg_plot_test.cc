// The SVG plot (loractl/svg_plot.h): well-formed XML, one marker per rank at
// its mean with error bars over seeds, one loss curve per rank.
#include "loractl/svg_plot.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "loractl/results_data.h"
#include "tests/loractl/results_fixture.h"
#include "tests/loractl/xml_check.h"

namespace lora::loractl {
namespace {

using ::testing::ElementsAre;
using testing::FixtureData;
using testing::FixtureResults;
using testing::FixtureSeries;
using ::testing::HasSubstr;
using testing::ParseXml;
using testing::XmlElement;

std::vector<XmlElement> WithClass(const std::vector<XmlElement>& elements,
                                  const std::string& name,
                                  const std::string& css_class) {
  std::vector<XmlElement> found;
  for (const XmlElement& element : elements) {
    auto it = element.attributes.find("class");
    if (element.name == name && it != element.attributes.end() &&
        it->second == css_class) {
      found.push_back(element);
    }
  }
  return found;
}

TEST(XmlCheckTest, RejectsWhatIsNotWellFormed) {
  EXPECT_TRUE(ParseXml("<a x=\"1\"><b/>t &amp; u</a>").ok());
  EXPECT_FALSE(ParseXml("<a><b></a>").ok());
  EXPECT_FALSE(ParseXml("<a x=1/>").ok());
  EXPECT_FALSE(ParseXml("<a>&nbsp;</a>").ok());
  EXPECT_FALSE(ParseXml("<a>x < y</a>").ok());
  EXPECT_FALSE(ParseXml("<a/><b/>").ok());
  EXPECT_FALSE(ParseXml("<a x=\"1\" x=\"2\"/>").ok());
}

TEST(SvgPlotTest, IsWellFormedWithOnePointPerRankAtItsMean) {
  const ResultsData data = FixtureData();
  absl::StatusOr<std::string> svg = RenderSvgPlot(data);
  ASSERT_TRUE(svg.ok()) << svg.status();
  absl::StatusOr<std::vector<XmlElement>> elements = ParseXml(*svg);
  ASSERT_TRUE(elements.ok()) << elements.status();
  ASSERT_FALSE(elements->empty());
  EXPECT_EQ(elements->front().name, "svg");
  EXPECT_EQ(elements->front().attributes.at("xmlns"),
            "http://www.w3.org/2000/svg");

  const std::vector<XmlElement> points =
      WithClass(*elements, "circle", "metric-point");
  ASSERT_EQ(points.size(), 4u);
  std::vector<std::string> groups;
  for (size_t i = 0; i < points.size(); ++i) {
    groups.push_back(points[i].attributes.at("data-group"));
    EXPECT_DOUBLE_EQ(std::stod(points[i].attributes.at("data-mean")),
                     data.groups[i].mean);
    EXPECT_EQ(points[i].attributes.at("data-runs"), "2");
  }
  EXPECT_THAT(groups, ElementsAre("1", "2", "4", "8"));
  // Higher accuracy is drawn higher (smaller y).
  EXPECT_GT(std::stod(points[0].attributes.at("cy")),
            std::stod(points[3].attributes.at("cy")));
  // A vertical bar and two caps per rank (two seeds each).
  EXPECT_EQ(WithClass(*elements, "line", "error-bar").size(), 12u);
  const std::vector<XmlElement> curves =
      WithClass(*elements, "polyline", "loss-curve");
  ASSERT_EQ(curves.size(), 4u);
  EXPECT_EQ(curves[2].attributes.at("data-group"), "4");
  // One vertex per step.
  const std::string& vertices = curves[2].attributes.at("points");
  EXPECT_EQ(std::count(vertices.begin(), vertices.end(), ' ') + 1, 12);
  EXPECT_THAT(*svg, HasSubstr("LoRA rank r"));
}

TEST(SvgPlotTest, SingleRunsHaveNoErrorBarsAndTextIsEscaped) {
  v1::GetResultsResponse results = FixtureResults();
  results.mutable_sweep()->set_name("r&d <sweep> \"one\"");
  for (v1::ResultGroup& group : *results.mutable_groups()) {
    group.set_runs(1);
    group.set_metric_std(0);
  }
  absl::StatusOr<std::string> svg =
      RenderSvgPlot(BuildResultsData(results, FixtureSeries()));
  ASSERT_TRUE(svg.ok()) << svg.status();
  absl::StatusOr<std::vector<XmlElement>> elements = ParseXml(*svg);
  ASSERT_TRUE(elements.ok()) << elements.status();
  EXPECT_EQ(WithClass(*elements, "circle", "metric-point").size(), 4u);
  EXPECT_TRUE(WithClass(*elements, "line", "error-bar").empty());
  EXPECT_THAT(*svg, HasSubstr("r&amp;d &lt;sweep&gt; &quot;one&quot;"));
}

TEST(SvgPlotTest, GroupsWithoutSucceededRunsAreLeftOutAndNoneIsAnError) {
  v1::GetResultsResponse results = FixtureResults();
  results.mutable_groups(1)->set_runs(0);
  absl::StatusOr<std::string> svg =
      RenderSvgPlot(BuildResultsData(results, {}));
  ASSERT_TRUE(svg.ok()) << svg.status();
  absl::StatusOr<std::vector<XmlElement>> elements = ParseXml(*svg);
  ASSERT_TRUE(elements.ok()) << elements.status();
  EXPECT_EQ(WithClass(*elements, "circle", "metric-point").size(), 3u);
  EXPECT_TRUE(WithClass(*elements, "polyline", "loss-curve").empty());
  EXPECT_THAT(*svg, HasSubstr("no loss reported yet"));

  for (v1::ResultGroup& group : *results.mutable_groups()) group.set_runs(0);
  EXPECT_EQ(RenderSvgPlot(BuildResultsData(results, {})).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace lora::loractl
