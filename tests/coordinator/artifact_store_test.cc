// The artifact store against both run stores: uploads in odd chunks come
// back byte-identical, a re-upload stores nothing, every malformed stream
// fails with InvalidArgument and publishes nothing, duplicate uploads at
// once store one copy, crashed uploads are cleaned up, and nothing read or
// written leaves the root.
#include "coordinator/artifact_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/sha256.h"
#include "coordinator/memory_run_store.h"
#include "coordinator/sqlite_run_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sweep/artifact_manifest.h"

namespace lora::coordinator {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr int64_t kKind = 2;  // lora.v1.ARTIFACT_KIND_BASE_CHECKPOINT

void WriteBytes(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> Entries(const std::string& folder) {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(folder, error)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string RandomBytes(size_t size, unsigned seed) {
  std::mt19937 engine(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(engine() & 0xff);
  return bytes;
}

// The test folder: a file over two chunks long, an empty file, nesting.
const std::map<std::string, std::string>& FolderFiles() {
  static const auto* files = new std::map<std::string, std::string>{
      {"config.json", R"({"hidden_size": 64, "num_layers": 2})"},
      {"weights/model.bin",
       RandomBytes(2 * ArtifactStore::kMaxChunkBytes + 12345, 7)},
      {"weights/empty", ""},
      {"z/deep/er/notes.txt", "notes\n"},
  };
  return *files;
}

// Writes every file of the session's manifest from `folder`, in chunks of
// `chunk` bytes (an empty file as one empty chunk).
absl::Status WriteFolder(UploadSession* session, const std::string& folder,
                         size_t chunk) {
  for (const sweep::ArtifactFileEntry& file : session->manifest().files) {
    const std::string bytes = ReadBytes(folder + "/" + file.path);
    size_t offset = 0;
    do {
      const size_t n = std::min(chunk, bytes.size() - offset);
      const absl::Status status = session->Write(
          file.path, static_cast<int64_t>(offset), bytes.substr(offset, n));
      if (!status.ok()) return status;
      offset += n;
    } while (offset < bytes.size());
  }
  return absl::OkStatus();
}

std::string FolderOf(const std::string& root, const std::string& id) {
  const std::string hex = id.substr(7);
  return absl::StrCat(root, "/", hex.substr(0, 2), "/", hex);
}

class ArtifactStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    // "Name/memory" -> "Name_memory".
    std::string name =
        ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    if (GetParam() == "memory") {
      records_ = std::make_unique<MemoryRunStore>();
    } else {
      auto store = SqliteRunStore::Open(dir_ + "/runs.db");
      ASSERT_TRUE(store.ok()) << store.status();
      records_ = std::move(*store);
    }
    root_ = dir_ + "/artifacts";
    OpenStore();
    source_ = dir_ + "/source";
    for (const auto& [path, bytes] : FolderFiles()) {
      WriteBytes(source_ + "/" + path, bytes);
    }
    auto manifest = sweep::ManifestOfFolder(source_);
    ASSERT_TRUE(manifest.ok()) << manifest.status();
    manifest_ = *manifest;
  }

  void OpenStore(const ArtifactStoreOptions& options = {}) {
    store_.reset();
    auto store = ArtifactStore::Open(root_, records_.get(), options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  std::unique_ptr<UploadSession> Begin(
      const sweep::ArtifactManifest& manifest) {
    auto session = store_->BeginUpload(manifest, kKind, "tiny", "run-1");
    EXPECT_TRUE(session.ok()) << session.status();
    return session.ok() ? std::move(*session) : nullptr;
  }

  UploadResult UploadSource(size_t chunk, int64_t now_ms = 1000) {
    std::unique_ptr<UploadSession> session = Begin(manifest_);
    EXPECT_TRUE(WriteFolder(session.get(), source_, chunk).ok());
    auto result = session->Finish(now_ms);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : UploadResult{};
  }

  std::map<std::string, std::string> Download(const std::string& id) {
    std::map<std::string, std::string> files;
    const absl::Status status = store_->ForEachChunk(
        id,
        [&](const std::string& path, int64_t offset, absl::string_view data) {
          EXPECT_LE(static_cast<int64_t>(data.size()),
                    ArtifactStore::kMaxChunkBytes);
          std::string& bytes = files[path];
          EXPECT_EQ(offset, static_cast<int64_t>(bytes.size())) << path;
          bytes.append(data.data(), data.size());
          return true;
        });
    EXPECT_TRUE(status.ok()) << status;
    return files;
  }

  // Nothing published, no record, no staging folder left.
  void ExpectNothingStored(const std::string& id) {
    EXPECT_THAT(Entries(root_), ElementsAre(".lock", ".staging"));
    EXPECT_THAT(Entries(root_ + "/.staging"), IsEmpty());
    EXPECT_TRUE(absl::IsNotFound(records_->GetArtifact(id).status()));
    auto exists = store_->Exists(id);
    ASSERT_TRUE(exists.ok()) << exists.status();
    EXPECT_FALSE(*exists);
  }

  std::string dir_, root_, source_;
  std::unique_ptr<RunStore> records_;
  std::unique_ptr<ArtifactStore> store_;
  sweep::ArtifactManifest manifest_;
};

TEST_P(ArtifactStoreTest, UploadInOddChunksDownloadsByteIdentical) {
  const UploadResult result = UploadSource(7777, /*now_ms=*/1234);
  EXPECT_FALSE(result.already_existed);
  EXPECT_EQ(result.artifact.artifact_id, manifest_.artifact_id);
  EXPECT_EQ(result.artifact.kind, kKind);
  EXPECT_EQ(result.artifact.name, "tiny");
  EXPECT_EQ(result.artifact.run_id, "run-1");
  EXPECT_EQ(result.artifact.create_ms, 1234);
  EXPECT_EQ(result.artifact.size_bytes, manifest_.size_bytes);
  ASSERT_EQ(result.artifact.files.size(), 4u);

  // Published in place, staging empty, recorded.
  const std::string folder = FolderOf(root_, manifest_.artifact_id);
  for (const auto& [path, bytes] : FolderFiles()) {
    EXPECT_EQ(ReadBytes(folder + "/" + path), bytes) << path;
  }
  EXPECT_THAT(Entries(root_ + "/.staging"), IsEmpty());
  auto record = store_->Get(manifest_.artifact_id);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->create_ms, 1234);
  EXPECT_EQ(record->files[0].path, "config.json");
  EXPECT_TRUE(*store_->Exists(manifest_.artifact_id));

  const auto downloaded = Download(manifest_.artifact_id);
  EXPECT_EQ(downloaded, FolderFiles());
}

TEST_P(ArtifactStoreTest, ReaderYieldsManifestOrderInChunksOfAtMostOneMiB) {
  UploadSource(ArtifactStore::kMaxChunkBytes);
  auto reader = store_->OpenReader(manifest_.artifact_id);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::vector<std::pair<std::string, int64_t>> chunks;
  FileChunk chunk;
  while (true) {
    auto more = (*reader)->Next(&chunk);
    ASSERT_TRUE(more.ok()) << more.status();
    if (!*more) break;
    chunks.emplace_back(chunk.path, chunk.offset);
  }
  const int64_t mib = ArtifactStore::kMaxChunkBytes;
  EXPECT_THAT(chunks, ElementsAre(std::make_pair("config.json", 0),
                                  std::make_pair("weights/empty", 0),
                                  std::make_pair("weights/model.bin", 0),
                                  std::make_pair("weights/model.bin", mib),
                                  std::make_pair("weights/model.bin", 2 * mib),
                                  std::make_pair("z/deep/er/notes.txt", 0)));
  auto after = (*reader)->Next(&chunk);
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(*after);
}

TEST_P(ArtifactStoreTest, ForEachChunkStopsWhenTheSinkSaysSo) {
  UploadSource(4096);
  int calls = 0;
  EXPECT_TRUE(
      store_
          ->ForEachChunk(manifest_.artifact_id,
                         [&](const std::string&, int64_t, absl::string_view) {
                           ++calls;
                           return false;
                         })
          .ok());
  EXPECT_EQ(calls, 1);
}

TEST_P(ArtifactStoreTest, ReuploadReportsAlreadyExistedAndRewritesNothing) {
  UploadSource(65536, /*now_ms=*/1000);
  const std::string published =
      FolderOf(root_, manifest_.artifact_id) + "/weights/model.bin";
  struct stat before;
  ASSERT_EQ(::stat(published.c_str(), &before), 0);

  std::unique_ptr<UploadSession> session = Begin(manifest_);
  EXPECT_TRUE(session->existed_at_begin());
  // Nothing staged for a known artifact.
  EXPECT_THAT(Entries(root_ + "/.staging"), IsEmpty());
  ASSERT_TRUE(WriteFolder(session.get(), source_, 99999).ok());
  auto again = session->Finish(/*now_ms=*/5000);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->already_existed);
  EXPECT_EQ(again->artifact.create_ms, 1000);  // the first upload's record

  struct stat after;
  ASSERT_EQ(::stat(published.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  const std::string hex = manifest_.artifact_id.substr(7);
  EXPECT_THAT(Entries(root_ + "/" + hex.substr(0, 2)), ElementsAre(hex));
  EXPECT_THAT(Entries(root_ + "/.staging"), IsEmpty());
}

TEST_P(ArtifactStoreTest, ReuploadOfKnownArtifactStillChecksTheBytes) {
  UploadSource(65536);
  std::unique_ptr<UploadSession> session = Begin(manifest_);
  ASSERT_TRUE(session->existed_at_begin());
  const absl::Status status =
      session->Write("config.json", 0, std::string(36, 'x'));
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("sha256"));
}

TEST_P(ArtifactStoreTest, WrongBytesFailNamingTheFileAndStoreNothing) {
  std::unique_ptr<UploadSession> session = Begin(manifest_);
  std::string config = FolderFiles().at("config.json");
  config[3] ^= 1;
  const absl::Status status = session->Write("config.json", 0, config);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("\"config.json\""), HasSubstr("sha256"),
                    HasSubstr(manifest_.files[0].sha256)));
  ExpectNothingStored(manifest_.artifact_id);
  // The session has ended.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      session->Write("config.json", 0, FolderFiles().at("config.json"))));
  EXPECT_TRUE(absl::IsFailedPrecondition(session->Finish(1).status()));
}

TEST_P(ArtifactStoreTest, ShortFileFailsAtFinishAndStoresNothing) {
  std::unique_ptr<UploadSession> session = Begin(manifest_);
  // Every file but the last byte of the last one.
  for (const sweep::ArtifactFileEntry& file : manifest_.files) {
    std::string bytes = FolderFiles().at(file.path);
    if (file.path == "z/deep/er/notes.txt") bytes.pop_back();
    ASSERT_TRUE(session->Write(file.path, 0, bytes.substr(0, 1 << 20)).ok());
    for (size_t offset = 1 << 20; offset < bytes.size(); offset += 1 << 20) {
      ASSERT_TRUE(
          session->Write(file.path, offset, bytes.substr(offset, 1 << 20))
              .ok());
    }
  }
  const auto result = session->Finish(1);
  EXPECT_TRUE(absl::IsInvalidArgument(result.status())) << result.status();
  EXPECT_THAT(result.status().message(),
              AllOf(HasSubstr("\"z/deep/er/notes.txt\""),
                    HasSubstr("received 5 of its 6 bytes")));
  ExpectNothingStored(manifest_.artifact_id);
}

TEST_P(ArtifactStoreTest, ChunkPastTheFileSizeIsRejected) {
  std::unique_ptr<UploadSession> session = Begin(manifest_);
  const absl::Status status = session->Write(
      "config.json", 0, FolderFiles().at("config.json") + "extra");
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(), AllOf(HasSubstr("\"config.json\" at offset 0"),
                                      HasSubstr("runs past")));
  ExpectNothingStored(manifest_.artifact_id);
}

TEST_P(ArtifactStoreTest, GapIsRejectedNamingPathAndOffset) {
  std::unique_ptr<UploadSession> session = Begin(manifest_);
  const std::string& bytes = FolderFiles().at("config.json");
  ASSERT_TRUE(session->Write("config.json", 0, bytes.substr(0, 10)).ok());
  const absl::Status status =
      session->Write("config.json", 12, bytes.substr(12));
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(), AllOf(HasSubstr("\"config.json\" at offset 12"),
                                      HasSubstr("expected offset 10")));
  ExpectNothingStored(manifest_.artifact_id);
}

TEST_P(ArtifactStoreTest, OverlapIsRejected) {
  std::unique_ptr<UploadSession> session = Begin(manifest_);
  const std::string& bytes = FolderFiles().at("config.json");
  ASSERT_TRUE(session->Write("config.json", 0, bytes.substr(0, 10)).ok());
  const absl::Status status = session->Write("config.json", 5, bytes.substr(5));
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("expected offset 10"));
  ExpectNothingStored(manifest_.artifact_id);
}

TEST_P(ArtifactStoreTest, SkippingAnIncompleteFileIsRejected) {
  std::unique_ptr<UploadSession> session = Begin(manifest_);
  // weights/model.bin before config.json.
  const absl::Status status = session->Write("weights/model.bin", 0, "abc");
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("\"weights/model.bin\" at offset 0"),
                    HasSubstr("file \"config.json\": received 0 of its")));
  ExpectNothingStored(manifest_.artifact_id);
}

TEST_P(ArtifactStoreTest, GoingBackToACompleteFileIsRejected) {
  std::unique_ptr<UploadSession> session = Begin(manifest_);
  ASSERT_TRUE(
      session->Write("config.json", 0, FolderFiles().at("config.json")).ok());
  ASSERT_TRUE(session->Write("weights/empty", 0, "").ok());
  const absl::Status status = session->Write("config.json", 0, "x");
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("\"config.json\" at offset 0"),
                    HasSubstr("complete"), HasSubstr("weights/model.bin")));
  ExpectNothingStored(manifest_.artifact_id);
}

TEST_P(ArtifactStoreTest, EmptyFilesMayBeSkipped) {
  std::unique_ptr<UploadSession> session = Begin(manifest_);
  for (const sweep::ArtifactFileEntry& file : manifest_.files) {
    if (file.size_bytes == 0) continue;  // no chunk for weights/empty
    const std::string& bytes = FolderFiles().at(file.path);
    for (size_t offset = 0; offset < bytes.size(); offset += 1 << 20) {
      ASSERT_TRUE(
          session->Write(file.path, offset, bytes.substr(offset, 1 << 20))
              .ok());
    }
  }
  auto result = session->Finish(1);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(Download(manifest_.artifact_id), FolderFiles());
}

TEST_P(ArtifactStoreTest, ChunkForAFileNotInTheManifestIsRejected) {
  for (const std::string path : {"extra.txt", "../escape", "/etc/passwd",
                                 "weights/../config.json", "a//b", ""}) {
    std::unique_ptr<UploadSession> session = Begin(manifest_);
    const absl::Status status = session->Write(path, 0, "x");
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << path << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr("at offset 0")) << path;
    ExpectNothingStored(manifest_.artifact_id);
  }
  EXPECT_FALSE(fs::exists(dir_ + "/escape"));
}

TEST_P(ArtifactStoreTest, ChunkLargerThanOneMiBIsRejected) {
  std::unique_ptr<UploadSession> session = Begin(manifest_);
  const std::string& bytes = FolderFiles().at("weights/model.bin");
  ASSERT_TRUE(
      session->Write("config.json", 0, FolderFiles().at("config.json")).ok());
  const absl::Status status =
      session->Write("weights/model.bin", 0,
                     bytes.substr(0, ArtifactStore::kMaxChunkBytes + 1));
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  ExpectNothingStored(manifest_.artifact_id);
}

TEST_P(ArtifactStoreTest, ManifestWithEscapingPathsIsRejectedAtBegin) {
  for (const std::string path :
       {"../evil", "/etc/passwd", "a/../../evil", "a\\..\\evil", "./x"}) {
    sweep::ArtifactManifest manifest;
    manifest.files = {{path, 3, Sha256Hex("abc")}};
    manifest.size_bytes = 3;
    manifest.artifact_id = sweep::ArtifactIdOf(manifest.files);
    auto session = store_->BeginUpload(manifest, kKind, "evil", "");
    EXPECT_TRUE(absl::IsInvalidArgument(session.status()))
        << path << ": " << session.status();
    ExpectNothingStored(manifest.artifact_id);
  }
}

TEST_P(ArtifactStoreTest, ManifestWhoseIdDoesNotMatchIsRejected) {
  sweep::ArtifactManifest manifest = manifest_;
  manifest.files[0].size_bytes += 1;
  manifest.size_bytes += 1;
  auto session = store_->BeginUpload(manifest, kKind, "tiny", "");
  EXPECT_TRUE(absl::IsInvalidArgument(session.status())) << session.status();
  EXPECT_THAT(session.status().message(), HasSubstr("does not match"));
  ExpectNothingStored(manifest_.artifact_id);
}

TEST_P(ArtifactStoreTest, LimitsRejectTooLargeArtifacts) {
  ArtifactStoreOptions options;
  options.max_artifact_bytes = manifest_.size_bytes - 1;
  OpenStore(options);
  auto too_big = store_->BeginUpload(manifest_, kKind, "tiny", "");
  EXPECT_TRUE(absl::IsResourceExhausted(too_big.status())) << too_big.status();
  EXPECT_THAT(too_big.status().message(),
              HasSubstr(absl::StrCat(manifest_.size_bytes)));

  options = {};
  options.max_files = 3;
  OpenStore(options);
  auto too_many = store_->BeginUpload(manifest_, kKind, "tiny", "");
  EXPECT_TRUE(absl::IsResourceExhausted(too_many.status()))
      << too_many.status();
  EXPECT_THAT(too_many.status().message(), HasSubstr("4 files"));
  ExpectNothingStored(manifest_.artifact_id);
}

TEST_P(ArtifactStoreTest, AbortAndDestructionRemoveTheStagingFolder) {
  std::unique_ptr<UploadSession> session = Begin(manifest_);
  ASSERT_TRUE(
      session->Write("config.json", 0, FolderFiles().at("config.json")).ok());
  EXPECT_THAT(Entries(root_ + "/.staging"), Not(IsEmpty()));
  session->Abort();
  ExpectNothingStored(manifest_.artifact_id);
  EXPECT_TRUE(
      absl::IsFailedPrecondition(session->Write("weights/empty", 0, "")));

  session = Begin(manifest_);
  ASSERT_TRUE(
      session->Write("config.json", 0, FolderFiles().at("config.json")).ok());
  EXPECT_THAT(Entries(root_ + "/.staging"), Not(IsEmpty()));
  session.reset();
  ExpectNothingStored(manifest_.artifact_id);
}

TEST_P(ArtifactStoreTest, TwoUploadsOfTheSameArtifactAtOnceStoreOneCopy) {
  // Both begin before either finishes: neither knows the artifact.
  std::unique_ptr<UploadSession> first = Begin(manifest_);
  std::unique_ptr<UploadSession> second = Begin(manifest_);
  ASSERT_FALSE(first->existed_at_begin());
  ASSERT_FALSE(second->existed_at_begin());
  ASSERT_TRUE(WriteFolder(first.get(), source_, 4099).ok());
  ASSERT_TRUE(WriteFolder(second.get(), source_, 70001).ok());
  auto a = first->Finish(10);
  auto b = second->Finish(20);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_FALSE(a->already_existed);
  EXPECT_TRUE(b->already_existed);
  EXPECT_EQ(b->artifact.create_ms, 10);
  EXPECT_THAT(Entries(root_ + "/.staging"), IsEmpty());
  EXPECT_EQ(Download(manifest_.artifact_id), FolderFiles());
}

TEST_P(ArtifactStoreTest, ConcurrentDuplicateUploadsFromThreads) {
  constexpr int kUploads = 4;
  std::vector<std::unique_ptr<UploadSession>> sessions;
  for (int i = 0; i < kUploads; ++i) sessions.push_back(Begin(manifest_));
  std::vector<absl::StatusOr<UploadResult>> results(
      kUploads, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kUploads; ++i) {
    threads.emplace_back([&, i] {
      const absl::Status wrote =
          WriteFolder(sessions[i].get(), source_, 1000 + 997 * i);
      results[i] = wrote.ok() ? sessions[i]->Finish(100 + i)
                              : absl::StatusOr<UploadResult>(wrote);
    });
  }
  for (std::thread& thread : threads) thread.join();
  int stored = 0;
  for (const auto& result : results) {
    ASSERT_TRUE(result.ok()) << result.status();
    if (!result->already_existed) ++stored;
  }
  EXPECT_EQ(stored, 1);
  EXPECT_THAT(Entries(root_ + "/.staging"), IsEmpty());
  EXPECT_EQ(Download(manifest_.artifact_id), FolderFiles());
}

TEST_P(ArtifactStoreTest, OpenRemovesLeftoverStagingFolders) {
  store_.reset();
  const std::string staging = root_ + "/.staging";
  WriteBytes(staging + "/123.0.0/weights/model.bin", "partial");
  WriteBytes(staging + "/loose-file", "x");
  // Deeper than the descriptors a recursive removal could hold open (and
  // than a path could name), made one level at a time.
  fs::create_directories(staging + "/456.1.1");
  int fd = ::open((staging + "/456.1.1").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 3000; ++i) {
    ASSERT_EQ(::mkdirat(fd, "d", 0755), 0) << i;
    const int next = ::openat(fd, "d", O_RDONLY | O_DIRECTORY);
    ASSERT_GE(next, 0) << i;
    ::close(fd);
    fd = next;
  }
  const int file = ::openat(fd, "f", O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(file, 0);
  ::close(file);
  ::close(fd);
  fs::create_symlink(source_, staging + "/link");
  OpenStore();
  EXPECT_THAT(Entries(staging), IsEmpty());
  // The symlink was removed, not followed.
  EXPECT_EQ(ReadBytes(source_ + "/config.json"),
            FolderFiles().at("config.json"));
}

TEST_P(ArtifactStoreTest, SecondStoreOnTheSameRootIsRefused) {
  auto second = ArtifactStore::Open(root_, records_.get());
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr(root_));
  store_.reset();
  second = ArtifactStore::Open(root_, records_.get());
  EXPECT_TRUE(second.ok()) << second.status();
}

TEST_P(ArtifactStoreTest, ReadFileReturnsOneFile) {
  UploadSource(1 << 16);
  auto config = store_->ReadFile(manifest_.artifact_id, "config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, FolderFiles().at("config.json"));
  auto empty = store_->ReadFile(manifest_.artifact_id, "weights/empty");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(*empty, "");

  EXPECT_TRUE(absl::IsNotFound(
      store_->ReadFile(manifest_.artifact_id, "missing.json").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      store_->ReadFile(manifest_.artifact_id, "../runs.db").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      store_->ReadFile(manifest_.artifact_id, "/etc/passwd").status()));
  EXPECT_TRUE(absl::IsNotFound(
      store_->ReadFile("sha256:" + std::string(64, 'a'), "config.json")
          .status()));

  ArtifactStoreOptions options;
  options.max_read_file_bytes = 1 << 20;
  OpenStore(options);
  auto big = store_->ReadFile(manifest_.artifact_id, "weights/model.bin");
  EXPECT_TRUE(absl::IsResourceExhausted(big.status())) << big.status();
}

TEST_P(ArtifactStoreTest, ValuesThatAreNotArtifactIdsAreRejected) {
  UploadSource(1 << 16);
  const std::string hex = manifest_.artifact_id.substr(7);
  for (const std::string& id :
       {std::string("abc"), hex, "sha256:" + hex.substr(1), "SHA256:" + hex,
        "sha256:../../" + hex.substr(6), "sha256:" + std::string(64, 'G'),
        manifest_.artifact_id + "/..", std::string("")}) {
    EXPECT_TRUE(absl::IsInvalidArgument(store_->Get(id).status())) << id;
    EXPECT_TRUE(absl::IsInvalidArgument(store_->Exists(id).status())) << id;
    EXPECT_TRUE(
        absl::IsInvalidArgument(store_->ReadFile(id, "config.json").status()))
        << id;
    EXPECT_TRUE(absl::IsInvalidArgument(store_->ForEachChunk(
        id,
        [](const std::string&, int64_t, absl::string_view) { return true; })))
        << id;
  }
  const std::string unknown = "sha256:" + std::string(64, '0');
  EXPECT_TRUE(absl::IsNotFound(store_->Get(unknown).status()));
  EXPECT_FALSE(*store_->Exists(unknown));
}

TEST_P(ArtifactStoreTest, CorruptedFilesFailReadsWithDataLoss) {
  UploadSource(1 << 16);
  const std::string config =
      FolderOf(root_, manifest_.artifact_id) + "/config.json";
  std::string bytes = FolderFiles().at("config.json");
  bytes[0] = '[';
  WriteBytes(config, bytes);  // same size, other bytes
  EXPECT_TRUE(absl::IsDataLoss(
      store_->ReadFile(manifest_.artifact_id, "config.json").status()));
  const absl::Status download = store_->ForEachChunk(
      manifest_.artifact_id,
      [](const std::string&, int64_t, absl::string_view) { return true; });
  EXPECT_TRUE(absl::IsDataLoss(download)) << download;
  EXPECT_THAT(download.message(), HasSubstr("config.json"));

  WriteBytes(config, "{}");  // other size
  EXPECT_TRUE(absl::IsDataLoss(
      store_->ReadFile(manifest_.artifact_id, "config.json").status()));
}

TEST_P(ArtifactStoreTest, SymlinksInsideTheRootAreNotFollowed) {
  UploadSource(1 << 16);
  const std::string folder = FolderOf(root_, manifest_.artifact_id);
  WriteBytes(dir_ + "/secret.json", FolderFiles().at("config.json"));
  fs::remove(folder + "/config.json");
  fs::create_symlink(dir_ + "/secret.json", folder + "/config.json");
  EXPECT_TRUE(absl::IsDataLoss(
      store_->ReadFile(manifest_.artifact_id, "config.json").status()));

  // A symlinked folder on the way is not followed either.
  fs::rename(folder + "/z", dir_ + "/z");
  fs::create_symlink(dir_ + "/z", folder + "/z");
  EXPECT_TRUE(absl::IsDataLoss(
      store_->ReadFile(manifest_.artifact_id, "z/deep/er/notes.txt").status()));
}

TEST_P(ArtifactStoreTest, RecordWithoutFolderCanBeUploadedAgain) {
  UploadSource(1 << 16, /*now_ms=*/1000);
  fs::remove_all(FolderOf(root_, manifest_.artifact_id));
  EXPECT_FALSE(*store_->Exists(manifest_.artifact_id));
  EXPECT_TRUE(absl::IsNotFound(store_->Get(manifest_.artifact_id).status()));

  std::unique_ptr<UploadSession> session = Begin(manifest_);
  EXPECT_FALSE(session->existed_at_begin());
  ASSERT_TRUE(WriteFolder(session.get(), source_, 12345).ok());
  auto result = session->Finish(2000);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->already_existed);  // the record was there
  EXPECT_TRUE(*store_->Exists(manifest_.artifact_id));
  EXPECT_EQ(Download(manifest_.artifact_id), FolderFiles());
}

TEST_P(ArtifactStoreTest, OpenValidatesItsArguments) {
  EXPECT_TRUE(absl::IsInvalidArgument(
      ArtifactStore::Open("", records_.get()).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      ArtifactStore::Open(dir_ + "/other", nullptr).status()));
  ArtifactStoreOptions options;
  options.max_files = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(
      ArtifactStore::Open(dir_ + "/other", records_.get(), options).status()));
}

TEST_P(ArtifactStoreTest, ClosesEveryDescriptorItOpens) {
  auto open_fds = [] {
    return std::distance(fs::directory_iterator("/proc/self/fd"),
                         fs::directory_iterator());
  };
  UploadSource(4096);  // the run store's own files are open from here on
  const auto before = open_fds();
  // Without its folder the artifact is unknown: these sessions stage.
  fs::remove_all(FolderOf(root_, manifest_.artifact_id));
  std::unique_ptr<UploadSession> failed = Begin(manifest_);
  ASSERT_FALSE(failed->existed_at_begin());
  EXPECT_TRUE(
      failed->Write("config.json", 0, FolderFiles().at("config.json")).ok());
  EXPECT_FALSE(failed->Write("weights/model.bin", 1, "x").ok());
  std::unique_ptr<UploadSession> aborted = Begin(manifest_);
  ASSERT_TRUE(
      aborted->Write("config.json", 0, FolderFiles().at("config.json")).ok());
  ASSERT_TRUE(aborted->Write("weights/model.bin", 0, "abc").ok());
  aborted.reset();
  UploadSource(50000);  // stored again
  UploadSource(4096);   // already existed
  Download(manifest_.artifact_id);
  ASSERT_TRUE(store_->ReadFile(manifest_.artifact_id, "config.json").ok());
  auto reader = store_->OpenReader(manifest_.artifact_id);
  ASSERT_TRUE(reader.ok());
  FileChunk chunk;
  ASSERT_TRUE((*reader)->Next(&chunk).ok());
  reader->reset();  // part-way through a file
  EXPECT_EQ(open_fds(), before);
}

INSTANTIATE_TEST_SUITE_P(Stores, ArtifactStoreTest,
                         ::testing::Values("memory", "sqlite"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace lora::coordinator
