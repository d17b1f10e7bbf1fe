#include "base/sha256.h"

#include <cstdlib>
#include <string>

#include "base/file_util.h"
#include "gtest/gtest.h"

namespace lora {
namespace {

TEST(Sha256Test, KnownDigests) {
  EXPECT_EQ(Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, IncrementalEqualsOneShot) {
  Sha256 hash;
  hash.Update("a");
  hash.Update("bc");
  EXPECT_EQ(hash.FinishHex(), Sha256Hex("abc"));
}

TEST(Sha256Test, FileDigestEqualsBytesDigest) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/f";
  const std::string bytes(200000, 'z');
  ASSERT_TRUE(WriteFileAtomically(path, bytes).ok());
  EXPECT_EQ(*Sha256FileHex(path), Sha256Hex(bytes));
  EXPECT_EQ(Sha256FileHex(path + ".missing").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace lora
