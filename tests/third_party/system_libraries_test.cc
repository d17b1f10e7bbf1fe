// Each wrapped system library in //third_party links and does real work, so
// a missing package or a wrong link flag fails here, not deep inside a
// component. LibTorch and c10d/Gloo are covered in tests/lora_core.
#include <benchmark/benchmark.h>
#include <httplib.h>
#include <re2/re2.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace {

using ::testing::ElementsAre;

TEST(SystemLibrariesTest, SqliteStoresAndReadsInWalMode) {
  std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/runs.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  ASSERT_EQ(sqlite3_exec(db,
                         "PRAGMA journal_mode=WAL;"
                         "CREATE TABLE runs(id TEXT PRIMARY KEY, rank INT);"
                         "INSERT INTO runs VALUES('r1', 4);",
                         nullptr, nullptr, &error),
            SQLITE_OK)
      << error;
  sqlite3_stmt* statement = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT rank FROM runs WHERE id='r1'", -1,
                               &statement, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(statement), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(statement, 0), 4);
  sqlite3_finalize(statement);
  sqlite3_close(db);
}

TEST(SystemLibrariesTest, YamlCppReportsLinesOfKeys) {
  YAML::Node sweep =
      YAML::Load("name: ablation\nparameters:\n  lora.rank: [1, 2, 4, 8]\n");
  EXPECT_EQ(sweep["name"].as<std::string>(), "ablation");
  YAML::Node ranks = sweep["parameters"]["lora.rank"];
  ASSERT_TRUE(ranks.IsSequence());
  EXPECT_EQ(ranks.size(), 4u);
  EXPECT_EQ(ranks[3].as<int>(), 8);
  EXPECT_EQ(ranks.Mark().line, 2);  // 0-based: the third line.
  EXPECT_THROW(YAML::Load("a: [1, 2"), YAML::ParserException);
}

TEST(SystemLibrariesTest, Re2MatchesUnicodeLetterClasses) {
  RE2 letters("(\\p{L}+)");
  std::string word;
  ASSERT_TRUE(RE2::PartialMatch("  café!", letters, &word));
  EXPECT_EQ(word, "café");
}

TEST(SystemLibrariesTest, NlohmannJsonRoundTrips) {
  nlohmann::json config = nlohmann::json::parse(
      R"({"hidden_size": 768, "architectures": ["RobertaModel"]})");
  EXPECT_EQ(config["hidden_size"].get<int>(), 768);
  EXPECT_EQ(config["architectures"][0], "RobertaModel");
  EXPECT_EQ(nlohmann::json::parse(config.dump()), config);
}

TEST(SystemLibrariesTest, AbseilStringsContainersAndTime) {
  absl::flat_hash_map<std::string, int> ranks;
  for (absl::string_view part : absl::StrSplit("1,2,4,8", ',')) {
    ranks[part] = static_cast<int>(ranks.size());
  }
  EXPECT_EQ(ranks.size(), 4u);
  EXPECT_EQ(absl::StrCat("r=", 4), "r=4");
  EXPECT_EQ(absl::FormatDuration(absl::Seconds(90)), "1m30s");
}

TEST(SystemLibrariesTest, SpdlogWritesToASink) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger logger("test", sink);
  logger.set_pattern("%v");
  logger.info("run {} leased by {}", "r1", "w1");
  logger.flush();
  EXPECT_EQ(out.str(), "run r1 leased by w1\n");
}

TEST(SystemLibrariesTest, HttplibServesOnLoopback) {
  httplib::Server server;
  server.Get("/metrics", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("lora_up 1\n", "text/plain; version=0.0.4");
  });
  int port = server.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread serving([&server] { server.listen_after_bind(); });
  // httplib 0.11 has no wait_until_ready(); poll, bounded.
  for (int i = 0; i < 5000 && !server.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  httplib::Client client("127.0.0.1", port);
  httplib::Result result = client.Get("/metrics");
  server.stop();
  serving.join();
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->body, "lora_up 1\n");
}

TEST(SystemLibrariesTest, GoogleBenchmarkRunsARegisteredBenchmark) {
  int iterations = 0;
  benchmark::RegisterBenchmark("count_iterations",
                               [&iterations](benchmark::State& state) {
                                 for (auto _ : state) ++iterations;
                               })
      ->Iterations(10);
  char program[] = "system_libraries_test";
  char* argv[] = {program, nullptr};
  int argc = 1;
  benchmark::Initialize(&argc, argv);
  EXPECT_EQ(benchmark::RunSpecifiedBenchmarks(), 1u);
  EXPECT_EQ(iterations, 10);
}

TEST(SystemLibrariesTest, GmockMatchersLink) {
  std::vector<int> ranks = {1, 2, 4, 8};
  EXPECT_THAT(ranks, ElementsAre(1, 2, 4, 8));
}

}  // namespace
