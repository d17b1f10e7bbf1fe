#include "sweep/artifact_manifest.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "base/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lora::sweep {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ArtifactManifestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* info =
        ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::path(std::getenv("TEST_TMPDIR")) / info->name();
    fs::remove_all(root_);
    fs::create_directories(root_);
  }

  // Writes `bytes` to `folder`/`path`, creating folders on the way.
  void Write(const std::string& folder, const std::string& path,
             const std::string& bytes) {
    const fs::path file = root_ / folder / path;
    fs::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary);
    out << bytes;
    ASSERT_TRUE(out.good()) << file;
  }

  std::string Folder(const std::string& name) {
    fs::create_directories(root_ / name);
    return (root_ / name).string();
  }

  std::string IdOf(const std::string& folder) {
    absl::StatusOr<ArtifactManifest> manifest = ManifestOfFolder(folder);
    EXPECT_TRUE(manifest.ok()) << manifest.status();
    return manifest.ok() ? manifest->artifact_id : "";
  }

  // A folder of three files used by the "what changes the id" tests.
  std::string Sample(const std::string& name) {
    Write(name, "config.json", "{\"model_type\": \"roberta\"}\n");
    Write(name, "vocab.json", "{\"a\": 0}");
    Write(name, "sub/merges.txt", "#version: 0.2\na b\n");
    return Folder(name);
  }

  fs::path root_;
};

TEST_F(ArtifactManifestTest, SameContentAtTwoPathsHasSameId) {
  const std::string a = Sample("one");
  const std::string b = Sample("elsewhere/two");
  EXPECT_EQ(IdOf(a), IdOf(b));
  EXPECT_EQ(IdOf(a), IdOf(a));
}

TEST_F(ArtifactManifestTest, OneChangedByteChangesId) {
  const std::string a = Sample("a");
  const std::string b = Sample("b");
  Write("b", "vocab.json", "{\"a\": 1}");  // same size, one byte differs
  EXPECT_NE(IdOf(a), IdOf(b));
}

TEST_F(ArtifactManifestTest, RenamedFileChangesId) {
  const std::string a = Sample("a");
  const std::string b = Sample("b");
  fs::rename(fs::path(b) / "sub" / "merges.txt", fs::path(b) / "merges.txt");
  EXPECT_NE(IdOf(a), IdOf(b));
}

TEST_F(ArtifactManifestTest, AddedFileChangesIdButEmptyFolderDoesNot) {
  const std::string a = Sample("a");
  const std::string b = Sample("b");
  fs::create_directories(fs::path(b) / "empty" / "nested");
  EXPECT_EQ(IdOf(a), IdOf(b));
  Write("b", "empty/extra", "");
  EXPECT_NE(IdOf(a), IdOf(b));
}

TEST_F(ArtifactManifestTest, IdIsSha256OfDocumentedManifestText) {
  Write("two", "b.txt", "hello\n");
  Write("two", "a/empty.bin", "");
  // "<sha256> <size_bytes> <path>\n" per file, sorted by path.
  const std::string expected_text =
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0 "
      "a/empty.bin\n"
      "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03 6 "
      "b.txt\n";

  absl::StatusOr<ArtifactManifest> manifest = ManifestOfFolder(Folder("two"));
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->artifact_id, "sha256:" + Sha256Hex(expected_text));
  EXPECT_EQ(ManifestText(manifest->files), expected_text);
  EXPECT_EQ(manifest->size_bytes, 6);
  ASSERT_EQ(manifest->files.size(), 2u);
  EXPECT_EQ(manifest->files[1].path, "b.txt");
  EXPECT_EQ(manifest->files[1].size_bytes, 6);
  EXPECT_EQ(manifest->files[1].sha256, Sha256Hex("hello\n"));
  EXPECT_TRUE(VerifyManifest(*manifest).ok());
}

TEST_F(ArtifactManifestTest, FilesAreSortedByFullPathInByteOrder) {
  // A walk that lists "a/" before "a.txt" would be wrong: '.' (0x2e) and
  // '-' (0x2d) sort before '/' (0x2f); 'A' before 'a'.
  for (const char* path : {"b", "a/c/d", "a/b", "a.txt", "a-b", "A", "a/c.x",
                           "\xc3\xa9t\xc3\xa9"}) {
    Write("nested", path, path);
  }
  absl::StatusOr<ArtifactManifest> manifest =
      ManifestOfFolder(Folder("nested"));
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  std::vector<std::string> paths;
  for (const ArtifactFileEntry& file : manifest->files) {
    paths.push_back(file.path);
  }
  EXPECT_THAT(paths, ElementsAre("A", "a-b", "a.txt", "a/b", "a/c.x", "a/c/d",
                                 "b", "\xc3\xa9t\xc3\xa9"));
}

TEST_F(ArtifactManifestTest, ManifestTextSortsACopy) {
  std::vector<ArtifactFileEntry> files = {{"z", 1, std::string(64, 'a')},
                                          {"m/n", 2, std::string(64, 'b')}};
  EXPECT_EQ(ManifestText(files), std::string(64, 'b') + " 2 m/n\n" +
                                     std::string(64, 'a') + " 1 z\n");
  EXPECT_EQ(files[0].path, "z");
  EXPECT_EQ(ArtifactIdOf(files),
            "sha256:" + Sha256Hex(ManifestText({files[1], files[0]})));
}

TEST_F(ArtifactManifestTest, SymlinksAreRejectedNotFollowed) {
  Sample("target");
  const std::string folder = Sample("with_link");
  fs::create_symlink(fs::path(folder) / "vocab.json",
                     fs::path(folder) / "link.json");
  absl::StatusOr<ArtifactManifest> manifest = ManifestOfFolder(folder);
  EXPECT_EQ(manifest.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(manifest.status().message(), HasSubstr("link.json"));
  EXPECT_THAT(manifest.status().message(), HasSubstr("symlink"));

  const std::string dir_link = Sample("with_dir_link");
  fs::create_directory_symlink(root_ / "target", fs::path(dir_link) / "t");
  manifest = ManifestOfFolder(dir_link);
  EXPECT_EQ(manifest.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(manifest.status().message(), HasSubstr("symlink"));
}

TEST_F(ArtifactManifestTest, FolderItselfMayBeASymlink) {
  const std::string folder = Sample("real");
  fs::create_directory_symlink(folder, root_ / "alias");
  EXPECT_EQ(IdOf((root_ / "alias").string()), IdOf(folder));
}

TEST_F(ArtifactManifestTest, FifoIsRejected) {
  const std::string folder = Sample("with_fifo");
  const std::string fifo = folder + "/sub/pipe";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  absl::StatusOr<ArtifactManifest> manifest = ManifestOfFolder(folder);
  EXPECT_EQ(manifest.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(manifest.status().message(), HasSubstr("sub/pipe"));
  EXPECT_THAT(manifest.status().message(), HasSubstr("fifo"));
}

TEST_F(ArtifactManifestTest, FileNamesThatAreNotArtifactPathsAreRejected) {
  for (const char* name : {"new\nline", "back\\slash", "bad\xff"}) {
    const std::string folder = Folder("odd");
    fs::remove_all(folder);
    Write("odd", "fine.txt", "x");
    Write("odd", std::string("sub/") + name, "x");
    absl::StatusOr<ArtifactManifest> manifest = ManifestOfFolder(folder);
    EXPECT_EQ(manifest.status().code(), absl::StatusCode::kInvalidArgument)
        << name;
    EXPECT_THAT(manifest.status().message(), HasSubstr("sub/")) << name;
  }
}

TEST_F(ArtifactManifestTest, MissingNonFolderAndEmptyFoldersAreErrors) {
  absl::StatusOr<ArtifactManifest> manifest =
      ManifestOfFolder((root_ / "missing").string());
  EXPECT_EQ(manifest.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(manifest.status().message(), HasSubstr("missing"));

  Write("", "plain_file", "x");
  manifest = ManifestOfFolder((root_ / "plain_file").string());
  EXPECT_EQ(manifest.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(manifest.status().message(), HasSubstr("not a folder"));

  const std::string empty = Folder("empty");
  fs::create_directories(fs::path(empty) / "only" / "folders");
  manifest = ManifestOfFolder(empty);
  EXPECT_EQ(manifest.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(manifest.status().message(), HasSubstr("no files"));
}

TEST(ValidateArtifactPathTest, AcceptsSafeRelativePaths) {
  for (const std::string& path : std::vector<std::string>{
           "config.json", "a/b/c.txt", ".hidden", "a/.b", "..a", "a../b", "a b",
           "dir/x-y_z.1", "\xc3\xa9t\xc3\xa9/caf\xc3\xa9",
           std::string(4096, 'x')}) {
    EXPECT_TRUE(ValidateArtifactPath(path).ok())
        << path << ": " << ValidateArtifactPath(path);
  }
}

TEST(ValidateArtifactPathTest, RejectsPathsThatCouldEscapeOrMislead) {
  const std::vector<std::string> bad = {
      "",
      "..",
      ".",
      "../x",
      "a/..",
      "a/../b",
      "a/./b",
      "./a",
      "/abs",
      "a//b",
      "a/",
      "/",
      "a\\b",
      "..\\x",
      "new\nline",
      "tab\there",
      "carriage\rreturn",
      std::string("nul\0byte", 8),
      "del\x7f",
      "bad\xff utf8",
      "\xc0\xaf",  // overlong '/'
      std::string(4097, 'x'),
  };
  for (const std::string& path : bad) {
    const absl::Status status = ValidateArtifactPath(path);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument)
        << "accepted: " << path;
    // Messages escape the path: no raw newline reaches a log line.
    EXPECT_EQ(std::string(status.message()).find('\n'), std::string::npos);
  }
}

TEST(ValidateArtifactIdTest, AcceptsOnlySha256LowercaseHex) {
  const std::string hex(64, 'a');
  EXPECT_TRUE(ValidateArtifactId("sha256:" + hex).ok());
  EXPECT_TRUE(ValidateArtifactId("sha256:0123456789abcdef0123456789abcdef"
                                 "0123456789abcdef0123456789abcdef")
                  .ok());
  for (const std::string& id :
       {std::string(""), hex, "sha256:" + hex.substr(1), "sha256:" + hex + "0",
        "sha256:" + std::string(64, 'A'), "SHA256:" + hex, "md5:" + hex,
        "sha256:" + std::string(63, 'a') + "g"}) {
    const absl::Status status = ValidateArtifactId(id);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << id;
  }
}

class VerifyManifestTest : public ::testing::Test {
 protected:
  static ArtifactManifest Good() {
    ArtifactManifest manifest;
    manifest.files = {{"a.txt", 3, Sha256Hex("abc")},
                      {"dir/b.txt", 0, Sha256Hex("")}};
    manifest.size_bytes = 3;
    manifest.artifact_id = ArtifactIdOf(manifest.files);
    return manifest;
  }

  // The manifest after `change`, with ids and sizes made consistent again
  // so that only the change itself can be what is rejected.
  template <typename Change>
  static absl::Status VerifyChanged(Change change, bool fix_id = true) {
    ArtifactManifest manifest = Good();
    change(manifest);
    if (fix_id) manifest.artifact_id = ArtifactIdOf(manifest.files);
    return VerifyManifest(manifest);
  }
};

TEST_F(VerifyManifestTest, AcceptsConsistentManifest) {
  EXPECT_TRUE(VerifyManifest(Good()).ok()) << VerifyManifest(Good());
}

TEST_F(VerifyManifestTest, RejectsIdThatDoesNotMatchFiles) {
  absl::Status status = VerifyChanged(
      [](ArtifactManifest& m) { m.files[0].sha256 = Sha256Hex("abd"); },
      /*fix_id=*/false);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("does not match"));

  status = VerifyChanged(
      [](ArtifactManifest& m) { m.artifact_id = "sha256:" + Sha256Hex("x"); },
      /*fix_id=*/false);
  EXPECT_THAT(status.message(), HasSubstr("does not match"));

  status =
      VerifyChanged([](ArtifactManifest& m) { m.artifact_id = "sha256:XYZ"; },
                    /*fix_id=*/false);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("artifact id"));
}

TEST_F(VerifyManifestTest, RejectsMalformedEntries) {
  struct Case {
    const char* what;
    void (*change)(ArtifactManifest&);
    const char* message;
  };
  const Case cases[] = {
      {"no files",
       [](ArtifactManifest& m) {
         m.files.clear();
         m.size_bytes = 0;
       },
       "no files"},
      {"escaping path", [](ArtifactManifest& m) { m.files[0].path = "../a"; },
       "\"..\""},
      {"absolute path", [](ArtifactManifest& m) { m.files[0].path = "/a"; },
       "relative"},
      {"duplicate",
       [](ArtifactManifest& m) { m.files[1].path = m.files[0].path; }, "twice"},
      {"unsorted",
       [](ArtifactManifest& m) { std::swap(m.files[0], m.files[1]); },
       "not sorted"},
      {"negative size",
       [](ArtifactManifest& m) {
         m.files[1].size_bytes = -1;
         m.size_bytes = 2;
       },
       "negative"},
      {"uppercase sha",
       [](ArtifactManifest& m) { m.files[0].sha256 = std::string(64, 'A'); },
       "sha256"},
      {"short sha", [](ArtifactManifest& m) { m.files[0].sha256 = "abc"; },
       "sha256"},
      {"total", [](ArtifactManifest& m) { m.size_bytes = 4; }, "add up"},
      {"file and folder",
       [](ArtifactManifest& m) {
         m.files = {{"dir", 0, Sha256Hex("")}, {"dir/b", 3, Sha256Hex("abc")}};
       },
       "also listed as a file"},
  };
  for (const Case& c : cases) {
    const absl::Status status = VerifyChanged(c.change);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(status.message(), HasSubstr(c.message)) << c.what;
  }
}

}  // namespace
}  // namespace lora::sweep
