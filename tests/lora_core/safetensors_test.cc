// The safetensors reader and writer, and one test per kind of bad file.
#include "lora_core/safetensors.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lora::core {
namespace {

using ::testing::HasSubstr;

// A file from a header text and a data section.
std::string FileBytes(const std::string& header, const std::string& data) {
  std::string bytes;
  uint64_t length = header.size();
  for (int i = 0; i < 8; ++i) bytes.push_back((length >> (8 * i)) & 0xff);
  return bytes + header + data;
}

std::string Floats(std::vector<float> values) {
  return std::string(reinterpret_cast<const char*>(values.data()),
                     values.size() * sizeof(float));
}

absl::Status ParseError(const std::string& bytes) {
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      SafetensorsReader::FromBuffer(bytes, "bad.safetensors");
  EXPECT_FALSE(reader.ok());
  return reader.ok() ? absl::OkStatus() : reader.status();
}

std::string TempPath(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

TEST(SafetensorsTest, ReadsAWellFormedBuffer) {
  const std::string bytes = FileBytes(
      R"({"b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
          "a": {"dtype": "F32", "shape": [1, 2], "data_offsets": [0, 8]},
          "__metadata__": {"format": "pt"}})",
      Floats({1, 2, 3, 4}));
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      SafetensorsReader::FromBuffer(bytes, "good.safetensors");
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_EQ((*reader)->tensors().size(), 2u);
  EXPECT_EQ((*reader)->tensors()[0].name, "a");  // Data order.
  const SafetensorsTensor* b = (*reader)->Find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->shape, (std::vector<int64_t>{2}));
  float values[2];
  std::memcpy(values, b->data, 8);
  EXPECT_EQ(values[0], 3);
  EXPECT_EQ(values[1], 4);
  EXPECT_EQ((*reader)->metadata().at("format"), "pt");
  EXPECT_EQ((*reader)->Find("c"), nullptr);
}

TEST(SafetensorsTest, WriteThenOpenRoundTripsEveryDtype) {
  const std::string path = TempPath("round_trip.safetensors");
  std::vector<float> f32 = {1.5f, -2.25f, 3.0f, 0.0f, 5.0f, 6.0f};
  std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x7bff};  // 1, -2, 65504
  std::vector<uint16_t> bf16 = {0x3f80, 0x4049};         // 1, ~3.14
  std::vector<int64_t> i64 = {-1, 0, 1LL << 40};
  ASSERT_TRUE(
      WriteSafetensors(path, {{"w.f32", DType::kF32, {2, 3}, f32.data(), 24},
                              {"w.f16", DType::kF16, {3}, f16.data(), 6},
                              {"w.bf16", DType::kBF16, {2}, bf16.data(), 4},
                              {"ids", DType::kI64, {3}, i64.data(), 24},
                              {"empty", DType::kF32, {0, 4}, nullptr, 0}})
          .ok());
  absl::StatusOr<std::string> raw = ReadFile(path);
  ASSERT_TRUE(raw.ok());
  uint64_t header_length = 0;
  std::memcpy(&header_length, raw->data(), 8);
  EXPECT_EQ((8 + header_length) % 8, 0u);  // Data starts 8-byte aligned.
  EXPECT_THAT(raw->substr(8, header_length),
              HasSubstr(R"("__metadata__":{"format":"pt"})"));
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      SafetensorsReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_EQ((*reader)->tensors().size(), 5u);
  const SafetensorsTensor* w = (*reader)->Find("w.f32");
  EXPECT_EQ(w->dtype, DType::kF32);
  EXPECT_EQ(w->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(w->data, f32.data(), 24), 0);
  EXPECT_EQ(std::memcmp((*reader)->Find("w.f16")->data, f16.data(), 6), 0);
  EXPECT_EQ(std::memcmp((*reader)->Find("w.bf16")->data, bf16.data(), 4), 0);
  EXPECT_EQ(std::memcmp((*reader)->Find("ids")->data, i64.data(), 24), 0);
  EXPECT_EQ((*reader)->Find("empty")->num_elements, 0);
}

TEST(SafetensorsTest, WriterRejectsInconsistentInput) {
  float data[4] = {};
  EXPECT_THAT(
      WriteSafetensors(TempPath("x.safetensors"),
                       {{"w", DType::kF32, {3}, data, 16}})
          .message(),
      HasSubstr("tensor \"w\": shape [3] of F32 needs 12 bytes, got 16"));
  EXPECT_THAT(WriteSafetensors(TempPath("x.safetensors"),
                               {{"w", DType::kF32, {1}, data, 4},
                                {"w", DType::kF32, {1}, data, 4}})
                  .message(),
              HasSubstr("tensor \"w\" given twice"));
  EXPECT_THAT(WriteSafetensors(TempPath("x.safetensors"),
                               {{"__metadata__", DType::kF32, {1}, data, 4}})
                  .message(),
              HasSubstr("not a tensor name"));
}

TEST(SafetensorsTest, MissingFileIsNotFound) {
  EXPECT_EQ(
      SafetensorsReader::Open(TempPath("nope.safetensors")).status().code(),
      absl::StatusCode::kNotFound);
}

TEST(SafetensorsBadFileTest, ShorterThanHeaderLength) {
  EXPECT_THAT(ParseError("abc").message(),
              HasSubstr("bad.safetensors: file is 3 bytes, shorter than the "
                        "8-byte header length"));
}

TEST(SafetensorsBadFileTest, EmptyFileOnDisk) {
  const std::string path = TempPath("empty.safetensors");
  std::ofstream(path).close();
  EXPECT_THAT(SafetensorsReader::Open(path).status().message(),
              HasSubstr("file is 0 bytes"));
}

TEST(SafetensorsBadFileTest, HeaderTooLong) {
  std::string bytes(8, '\0');
  uint64_t huge = kMaxSafetensorsHeaderBytes + 1;
  std::memcpy(bytes.data(), &huge, 8);
  EXPECT_THAT(ParseError(bytes).message(),
              HasSubstr("header length 100000001 exceeds the limit"));
}

TEST(SafetensorsBadFileTest, HeaderRunsPastEndOfFile) {
  std::string bytes = FileBytes("{}", "");
  bytes[0] = 50;
  EXPECT_THAT(ParseError(bytes).message(),
              HasSubstr("header length 50 runs past the end of the file (10 "
                        "bytes)"));
}

TEST(SafetensorsBadFileTest, HeaderNotJson) {
  EXPECT_THAT(ParseError(FileBytes("{\"a\": ", "")).message(),
              HasSubstr("header is not valid JSON"));
}

TEST(SafetensorsBadFileTest, HeaderNotAnObject) {
  EXPECT_THAT(ParseError(FileBytes("[1, 2]", "")).message(),
              HasSubstr("header is not a JSON object"));
}

TEST(SafetensorsBadFileTest, DeeplyNestedHeaderIsRejectedWithoutRecursion) {
  // Millions of nested brackets would overflow a recursive parser's stack.
  const std::string deep =
      "{\"w\": {\"shape\": " + std::string(2'000'000, '[') +
      std::string(2'000'000, ']') + "}}";
  EXPECT_THAT(ParseError(FileBytes(deep, "")).message(),
              HasSubstr("header nests 2000002 levels deep (a header has 3)"));
}

TEST(SafetensorsBadFileTest, DuplicateTensorName) {
  EXPECT_THAT(
      ParseError(
          FileBytes(
              R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                         "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
              Floats({1, 2})))
          .message(),
      HasSubstr("header repeats the key \"w\""));
}

TEST(SafetensorsBadFileTest, UnknownDtype) {
  EXPECT_THAT(
      ParseError(
          FileBytes(
              R"({"w": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}})",
              std::string(8, '\0')))
          .message(),
      HasSubstr("tensor \"w\": unsupported dtype \"F64\" (supported: F32, "
                "F16, BF16, I64)"));
}

TEST(SafetensorsBadFileTest, MissingFields) {
  EXPECT_THAT(
      ParseError(FileBytes(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})",
                           Floats({1})))
          .message(),
      HasSubstr("tensor \"w\": missing or non-string dtype"));
  EXPECT_THAT(
      ParseError(FileBytes(R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})",
                           Floats({1})))
          .message(),
      HasSubstr("tensor \"w\": missing or non-array shape"));
  EXPECT_THAT(ParseError(FileBytes(R"({"w": {"dtype": "F32", "shape": [1],
                                           "data_offsets": [0]}})",
                                   Floats({1})))
                  .message(),
              HasSubstr("data_offsets must be two non-negative integers"));
  EXPECT_THAT(ParseError(FileBytes(R"({"w": 3})", "")).message(),
              HasSubstr("tensor \"w\": entry is not an object"));
  EXPECT_THAT(ParseError(FileBytes(R"({"w": {"dtype": "F32", "shape": [1],
                                           "data_offsets": [0, 4], "x": 1}})",
                                   Floats({1})))
                  .message(),
              HasSubstr("tensor \"w\": unknown field \"x\""));
}

TEST(SafetensorsBadFileTest, NegativeOrFractionalDimension) {
  EXPECT_THAT(
      ParseError(
          FileBytes(
              R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})",
              Floats({1})))
          .message(),
      HasSubstr("has a dimension that is not a non-negative integer"));
}

TEST(SafetensorsBadFileTest, ShapeDisagreesWithByteCount) {
  EXPECT_THAT(
      ParseError(
          FileBytes(
              R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})",
              std::string(20, '\0')))
          .message(),
      HasSubstr("tensor \"w\": shape [2, 3] of F32 needs 24 bytes, but "
                "data_offsets [0, 20] hold 20"));
}

TEST(SafetensorsBadFileTest, HugeShapeOverflows) {
  EXPECT_THAT(ParseError(FileBytes(R"({"w": {"dtype": "I64",
      "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 8]}})",
                                   std::string(8, '\0')))
                  .message(),
              HasSubstr("is too large"));
}

TEST(SafetensorsBadFileTest, OffsetsOutOfRange) {
  EXPECT_THAT(
      ParseError(
          FileBytes(
              R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
              Floats({1})))
          .message(),
      HasSubstr("tensor \"w\": data_offsets [0, 8] are out of range: the data "
                "section has 4 bytes"));
}

TEST(SafetensorsBadFileTest, OffsetsReversed) {
  EXPECT_THAT(
      ParseError(
          FileBytes(
              R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [4, 0]}})",
              Floats({1})))
          .message(),
      HasSubstr("data_offsets [4, 0] end before they begin"));
}

TEST(SafetensorsBadFileTest, OverlappingTensors) {
  EXPECT_THAT(
      ParseError(
          FileBytes(
              R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                         "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
              Floats({1, 2, 3})))
          .message(),
      HasSubstr("tensors \"a\" and \"b\" overlap (\"a\" ends at 8, \"b\" "
                "starts at 4)"));
}

TEST(SafetensorsBadFileTest, HoleBetweenTensors) {
  EXPECT_THAT(
      ParseError(
          FileBytes(
              R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                         "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
              Floats({1, 2, 3})))
          .message(),
      HasSubstr("hole of 4 bytes before tensor \"b\""));
}

TEST(SafetensorsBadFileTest, TrailingBytesBelongToNoTensor) {
  EXPECT_THAT(
      ParseError(
          FileBytes(
              R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
              Floats({1, 2})))
          .message(),
      HasSubstr("4 bytes at the end of the data section belong to no tensor"));
}

TEST(SafetensorsBadFileTest, BadMetadata) {
  EXPECT_THAT(
      ParseError(FileBytes(R"({"__metadata__": {"format": 1}})", "")).message(),
      HasSubstr("__metadata__ entry \"format\" is not a string"));
  EXPECT_THAT(ParseError(FileBytes(R"({"__metadata__": []})", "")).message(),
              HasSubstr("__metadata__ is not an object"));
}

TEST(SafetensorsBadFileTest, TruncatedFileOnDisk) {
  const std::string good = TempPath("good.safetensors");
  std::vector<float> values(64, 1.0f);
  ASSERT_TRUE(
      WriteSafetensors(good, {{"w", DType::kF32, {64}, values.data(), 256}})
          .ok());
  absl::StatusOr<std::string> bytes = ReadFile(good);
  const std::string truncated = TempPath("truncated.safetensors");
  std::ofstream(truncated, std::ios::binary)
      << bytes->substr(0, bytes->size() - 10);
  EXPECT_THAT(SafetensorsReader::Open(truncated).status().message(),
              HasSubstr("are out of range"));
}

}  // namespace
}  // namespace lora::core
