#include "worker/metrics_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace lora::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::string TestPath(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/metrics_file_test");
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/" + name;
  std::filesystem::remove(path);
  return path;
}

void Append(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::app | std::ios::binary) << text;
}

int64_t Size(const std::string& path) {
  return static_cast<int64_t>(std::filesystem::file_size(path));
}

std::vector<std::string> Names(const std::vector<v1::MetricPoint>& points) {
  std::vector<std::string> names;
  for (const v1::MetricPoint& point : points) names.push_back(point.name());
  return names;
}

TEST(MetricsFileTailTest, ReadsOnlyCompleteLines) {
  const std::string path = TestPath("partial.jsonl");
  const std::string first = R"({"type":"step","step":1})";
  Append(path, first + "\n" + R"({"type":"st)");
  MetricsFileTail tail(path);

  absl::StatusOr<MetricsChunk> chunk = tail.Read(0, 100);
  ASSERT_TRUE(chunk.ok()) << chunk.status();
  ASSERT_EQ(chunk->records.size(), 1u);
  EXPECT_EQ(chunk->records[0].json["step"], 1);
  EXPECT_EQ(chunk->records[0].end_offset,
            static_cast<int64_t>(first.size() + 1));
  EXPECT_EQ(chunk->next_offset, static_cast<int64_t>(first.size() + 1));

  // Nothing complete after the first line yet.
  absl::StatusOr<MetricsChunk> again = tail.Read(chunk->next_offset, 100);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_THAT(again->records, IsEmpty());
  EXPECT_EQ(again->next_offset, chunk->next_offset);

  Append(path, R"(ep","step":2})"
               "\n");
  absl::StatusOr<MetricsChunk> rest = tail.Read(chunk->next_offset, 100);
  ASSERT_TRUE(rest.ok()) << rest.status();
  ASSERT_EQ(rest->records.size(), 1u);
  EXPECT_EQ(rest->records[0].json["type"], "step");
  EXPECT_EQ(rest->records[0].json["step"], 2);
  EXPECT_EQ(rest->next_offset, Size(path));
  EXPECT_EQ(tail.invalid_lines_total(), 0);
}

TEST(MetricsFileTailTest, SkipsInvalidLinesAndCountsEachOnce) {
  const std::string path = TestPath("invalid.jsonl");
  Append(path,
         "{\"type\":\"step\",\"step\":1}\n"
         "not json\n"
         "42\n"
         "\n"
         "{\"type\":\"step\",\"step\":\n"
         "{\"type\":\"epoch\",\"step\":2}\n"
         "[1,2]\n");
  MetricsFileTail tail(path);

  absl::StatusOr<MetricsChunk> chunk = tail.Read(0, 100);
  ASSERT_TRUE(chunk.ok()) << chunk.status();
  ASSERT_EQ(chunk->records.size(), 2u);
  EXPECT_EQ(chunk->records[0].json["step"], 1);
  EXPECT_EQ(chunk->records[1].json["step"], 2);
  // "not json", "42", the cut object and "[1,2]"; the blank line is not
  // counted.
  EXPECT_EQ(chunk->invalid_lines, 4);
  // Past the trailing invalid line, so it is not examined again.
  EXPECT_EQ(chunk->next_offset, Size(path));
  EXPECT_EQ(tail.invalid_lines_total(), 4);

  // Reading the same lines again (a re-send) does not count them twice.
  absl::StatusOr<MetricsChunk> reread = tail.Read(0, 100);
  ASSERT_TRUE(reread.ok()) << reread.status();
  EXPECT_EQ(reread->invalid_lines, 4);
  EXPECT_EQ(tail.invalid_lines_total(), 4);

  Append(path, "{oops}\n");
  absl::StatusOr<MetricsChunk> more = tail.Read(chunk->next_offset, 100);
  ASSERT_TRUE(more.ok()) << more.status();
  EXPECT_THAT(more->records, IsEmpty());
  EXPECT_EQ(more->invalid_lines, 1);
  EXPECT_EQ(more->next_offset, Size(path));
  EXPECT_EQ(tail.invalid_lines_total(), 5);
}

TEST(MetricsFileTailTest, MaxRecordsStopsRightAfterTheLastRecord) {
  const std::string path = TestPath("max.jsonl");
  const std::string a = R"({"step":1})";
  const std::string b = R"({"step":2})";
  Append(path, a + "\nbad\n" + b + "\nbad\n" + R"({"step":3})" + "\n");
  MetricsFileTail tail(path);

  absl::StatusOr<MetricsChunk> chunk = tail.Read(0, 2);
  ASSERT_TRUE(chunk.ok()) << chunk.status();
  ASSERT_EQ(chunk->records.size(), 2u);
  const int64_t after_b = static_cast<int64_t>(a.size() + 5 + b.size() + 1);
  EXPECT_EQ(chunk->records[1].end_offset, after_b);
  EXPECT_EQ(chunk->next_offset, after_b);
  EXPECT_EQ(chunk->invalid_lines, 1);

  absl::StatusOr<MetricsChunk> rest = tail.Read(chunk->next_offset, 2);
  ASSERT_TRUE(rest.ok()) << rest.status();
  ASSERT_EQ(rest->records.size(), 1u);
  EXPECT_EQ(rest->records[0].json["step"], 3);
  EXPECT_EQ(rest->invalid_lines, 1);
  EXPECT_EQ(rest->next_offset, Size(path));

  absl::StatusOr<MetricsChunk> none = tail.Read(0, 0);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(none->records, IsEmpty());
  EXPECT_EQ(none->next_offset, 0);
}

TEST(MetricsFileTailTest, LinesAcrossReadBuffersKeepExactOffsets) {
  const std::string path = TestPath("large.jsonl");
  std::string text;
  std::vector<int64_t> ends;
  for (int i = 0; i < 3000; ++i) {
    // Varying lengths, so lines straddle the 64 KiB read buffer.
    text += absl::StrCat(R"({"type":"step","step":)", i, R"(,"pad":")",
                         std::string(i % 97, 'x'), "\"}\n");
    ends.push_back(static_cast<int64_t>(text.size()));
  }
  Append(path, text);
  MetricsFileTail tail(path);

  int64_t offset = 0;
  int next_step = 0;
  while (offset < static_cast<int64_t>(text.size())) {
    absl::StatusOr<MetricsChunk> chunk = tail.Read(offset, 700);
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    ASSERT_FALSE(chunk->records.empty());
    for (const MetricsRecord& record : chunk->records) {
      ASSERT_EQ(record.json["step"], next_step);
      ASSERT_EQ(record.end_offset, ends[next_step]);
      ++next_step;
    }
    offset = chunk->next_offset;
  }
  EXPECT_EQ(next_step, 3000);
  EXPECT_EQ(tail.invalid_lines_total(), 0);
}

TEST(MetricsFileTailTest, OverlongAndDeeplyNestedLinesAreInvalid) {
  const std::string path = TestPath("limits.jsonl");
  const std::string long_line =
      absl::StrCat(R"({"type":"step","pad":")", std::string(200, 'y'), "\"}");
  const std::string deep =
      absl::StrCat(R"({"a":)", std::string(50, '['), std::string(50, ']'), "}");
  Append(path, long_line + "\n" + deep + "\n" + R"({"step":9})" + "\n");
  MetricsFileTailOptions options;
  options.max_line_bytes = 100;
  options.max_nesting_depth = 32;
  MetricsFileTail tail(path, options);

  absl::StatusOr<MetricsChunk> chunk = tail.Read(0, 10);
  ASSERT_TRUE(chunk.ok()) << chunk.status();
  ASSERT_EQ(chunk->records.size(), 1u);
  EXPECT_EQ(chunk->records[0].json["step"], 9);
  EXPECT_EQ(chunk->invalid_lines, 2);
  EXPECT_EQ(chunk->next_offset, Size(path));

  // With the default limits both lines parse.
  MetricsFileTail lenient(path);
  absl::StatusOr<MetricsChunk> all = lenient.Read(0, 10);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->records.size(), 2u);
  EXPECT_EQ(all->invalid_lines, 1);  // 51 levels is still too deep
}

TEST(MetricsFileTailTest, MissingFileReadsAsEmpty) {
  MetricsFileTail tail(TestPath("missing.jsonl"));
  absl::StatusOr<MetricsChunk> chunk = tail.Read(0, 10);
  ASSERT_TRUE(chunk.ok()) << chunk.status();
  EXPECT_THAT(chunk->records, IsEmpty());
  EXPECT_EQ(chunk->next_offset, 0);
  absl::StatusOr<int64_t> end = tail.CompleteEnd();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(*end, 0);
}

TEST(MetricsFileTailTest, OffsetBeyondTheEndIsFailedPrecondition) {
  const std::string path = TestPath("shrunk.jsonl");
  Append(path, "{}\n");
  MetricsFileTail tail(path);
  absl::StatusOr<MetricsChunk> chunk = tail.Read(100, 10);
  EXPECT_EQ(chunk.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(tail.Read(-1, 10).status().code(),
            absl::StatusCode::kInvalidArgument);
  // The same for a file that does not exist (yet) and a non-zero offset.
  MetricsFileTail missing(TestPath("gone.jsonl"));
  EXPECT_EQ(missing.Read(3, 10).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(MetricsFileTailTest, CompleteEndIsAfterTheLastNewline) {
  const std::string path = TestPath("complete_end.jsonl");
  // A partial last line longer than the 64 KiB read buffer, so the
  // backwards search crosses buffers.
  const std::string first =
      absl::StrCat(R"({"pad":")", std::string(100000, 'a'), "\"}\n");
  Append(path, first + std::string(70000, 'b'));
  MetricsFileTail tail(path);
  absl::StatusOr<int64_t> end = tail.CompleteEnd();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(*end, static_cast<int64_t>(first.size()));

  Append(path, "\n");
  end = tail.CompleteEnd();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(*end, Size(path));

  const std::string no_newline = TestPath("no_newline.jsonl");
  Append(no_newline, "{\"step\":1}");
  end = MetricsFileTail(no_newline).CompleteEnd();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(*end, 0);
}

// --- PointsOf. ---

TEST(PointsOfTest, StepRecordCarriesItsFiveTrainingMetrics) {
  const nlohmann::json record = nlohmann::json::parse(
      R"({"type":"step","step":12,"epoch":2,"total_steps":40,"loss":0.75,
          "lr":0.001,"grad_norm":1.5,"tokens_per_second":900.5,
          "loss_scale":65536.0,"skipped":false})");
  const std::vector<v1::MetricPoint> points = PointsOf(record, 1700000123456);
  EXPECT_THAT(Names(points), ElementsAre("loss", "learning_rate", "grad_norm",
                                         "tokens_per_second", "loss_scale"));
  const std::vector<double> values = {0.75, 0.001, 1.5, 900.5, 65536.0};
  ASSERT_EQ(points.size(), values.size());
  for (size_t i = 0; i < points.size(); ++i) {
    EXPECT_EQ(points[i].step(), 12);
    EXPECT_EQ(points[i].epoch(), 2);
    EXPECT_DOUBLE_EQ(points[i].value(), values[i]);
    EXPECT_EQ(points[i].time().seconds(), 1700000123);
    EXPECT_EQ(points[i].time().nanos(), 456000000);
  }
}

TEST(PointsOfTest, EpochRecordCarriesTrainLossAndEveryValidationMetric) {
  const nlohmann::json record = nlohmann::json::parse(
      R"({"type":"epoch","epoch":3,"step":30,"train_loss":0.5,
          "val_loss":0.6,"val_accuracy":0.7,"val_perplexity":1.8,
          "val_note":"text","wall":12.0})");
  const std::vector<v1::MetricPoint> points = PointsOf(record, 0);
  EXPECT_THAT(Names(points), ElementsAre("train_loss", "val_accuracy",
                                         "val_loss", "val_perplexity"));
  for (const v1::MetricPoint& point : points) {
    EXPECT_EQ(point.step(), 30);
    EXPECT_EQ(point.epoch(), 3);
  }
  EXPECT_DOUBLE_EQ(points[0].value(), 0.5);
  EXPECT_DOUBLE_EQ(points[1].value(), 0.7);
}

TEST(PointsOfTest, GenerationRecordCarriesValBleu) {
  const std::vector<v1::MetricPoint> points =
      PointsOf(nlohmann::json::parse(
                   R"({"type":"generation","step":50,"val_bleu":61.25})"),
               0);
  ASSERT_EQ(points.size(), 1u);
  EXPECT_EQ(points[0].name(), "val_bleu");
  EXPECT_EQ(points[0].step(), 50);
  EXPECT_EQ(points[0].epoch(), 0);
  EXPECT_DOUBLE_EQ(points[0].value(), 61.25);
}

TEST(PointsOfTest, StepAndEpochRecordsAtTheSameStepNeverShareAName) {
  const std::vector<v1::MetricPoint> step =
      PointsOf(nlohmann::json::parse(R"({"type":"step","step":10,"epoch":1,
          "loss":0.9,"lr":0.1,"grad_norm":1,"tokens_per_second":5,
          "loss_scale":1})"),
               0);
  const std::vector<v1::MetricPoint> epoch =
      PointsOf(nlohmann::json::parse(R"({"type":"epoch","step":10,"epoch":1,
          "train_loss":0.8,"val_loss":0.7,"val_accuracy":0.5})"),
               0);
  std::set<std::string> names;
  for (const auto* points : {&step, &epoch}) {
    for (const v1::MetricPoint& point : *points) {
      EXPECT_EQ(point.step(), 10);
      EXPECT_TRUE(names.insert(point.name()).second) << point.name();
    }
  }
  EXPECT_EQ(names.size(), 8u);
}

TEST(PointsOfTest, MissingNonNumericAndNonFiniteValuesAreLeftOut) {
  const std::vector<v1::MetricPoint> points =
      PointsOf(nlohmann::json::parse(R"({"type":"step","step":3,"epoch":1,
          "loss":null,"lr":"0.1","grad_norm":2.5,"loss_scale":true})"),
               0);
  EXPECT_THAT(Names(points), ElementsAre("grad_norm"));
  // nlohmann stores a NaN double as a number; it must not become a point.
  nlohmann::json nan_record = {{"type", "step"}, {"step", 4}, {"loss", NAN}};
  EXPECT_THAT(PointsOf(nan_record, 0), IsEmpty());
}

TEST(PointsOfTest, OtherRecordsCarryNoPoints) {
  for (const char* text :
       {R"({"type":"resume","step":5,"epoch":1})",
        R"({"type":"load_report","text":"loaded 10 tensors"})",
        R"({"type":"checkpoint","step":5,"epoch":1})",
        R"({"type":"future_kind","step":5,"loss":1.0})",
        R"({"step":5,"loss":1.0})", R"({"type":"step","loss":1.0})",
        R"({"type":"step","step":-1,"loss":1.0})",
        R"({"type":"step","step":1.5,"loss":1.0})",
        R"({"type":7,"step":5,"loss":1.0})"}) {
    EXPECT_THAT(PointsOf(nlohmann::json::parse(text), 0), IsEmpty()) << text;
  }
}

TEST(PointsOfTest, CheckpointStepOfReadsOnlyCheckpointRecords) {
  EXPECT_EQ(CheckpointStepOf(nlohmann::json::parse(
                R"({"type":"checkpoint","step":40,"epoch":2})")),
            40);
  EXPECT_EQ(
      CheckpointStepOf(nlohmann::json::parse(R"({"type":"step","step":40})")),
      std::nullopt);
  EXPECT_EQ(CheckpointStepOf(nlohmann::json::parse(R"({"type":"checkpoint"})")),
            std::nullopt);
  EXPECT_EQ(StepOf(nlohmann::json::parse(R"({"type":"resume","step":7})")), 7);
  EXPECT_EQ(StepOf(nlohmann::json::parse("[1]")), std::nullopt);
}

}  // namespace
}  // namespace lora::worker
