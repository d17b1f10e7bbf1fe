#include "base/file_util.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lora {
namespace {

std::string TempDir() {
  std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/file_util";
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(FileUtilTest, WriteThenReadRoundTripsBinaryBytes) {
  const std::string path = TempDir() + "/blob";
  const std::string bytes("a\0b\xff\n", 5);
  ASSERT_TRUE(WriteFileAtomically(path, bytes).ok());
  absl::StatusOr<std::string> read = ReadFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, bytes);
  struct stat info;
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0644u);
}

TEST(FileUtilTest, OverwriteReplacesWholeFileAndLeavesNoTemporaries) {
  const std::string dir = TempDir() + "/overwrite";
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(WriteFileAtomically(dir + "/f", std::string(10000, 'x')).ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/f", "short").ok());
  EXPECT_EQ(*ReadFile(dir + "/f"), "short");
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST(FileUtilTest, ErrorsNameThePath) {
  absl::StatusOr<std::string> missing = ReadFile(TempDir() + "/missing");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), ::testing::HasSubstr("/missing"));
  absl::Status status =
      WriteFileAtomically(TempDir() + "/no/such/dir/file", "x");
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), ::testing::HasSubstr("/no/such/dir/file"));
}

}  // namespace
}  // namespace lora
