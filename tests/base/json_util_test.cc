#include "base/json_util.h"

#include <string>

#include "gtest/gtest.h"

namespace lora {
namespace {

TEST(JsonDepthTest, CountsNestingOutsideStrings) {
  EXPECT_EQ(JsonNestingDepth("3"), 0);
  EXPECT_EQ(JsonNestingDepth("{}"), 1);
  EXPECT_EQ(JsonNestingDepth(R"({"a": {"shape": [1, [2]]}})"), 4);
  EXPECT_EQ(JsonNestingDepth(R"({"a[[[": "}}\"[[["})"), 1);
  EXPECT_EQ(JsonNestingDepth(std::string(2'000'000, '[')), 2'000'000);
}

TEST(JsonExcerptTest, BoundsLength) {
  EXPECT_EQ(JsonExcerpt(nlohmann::json("short")), "\"short\"");
  EXPECT_EQ(JsonExcerpt(nlohmann::json(std::string(100, 'x')), 10),
            "\"xxxxxx...");
}

}  // namespace
}  // namespace lora
