#include "worker/artifact_transfer.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lora/v1/common.pb.h"
#include "lora/v1/worker_service.grpc.pb.h"
#include "sweep/artifact_manifest.h"
#include "worker/coordinator_channel.h"

namespace lora::worker {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value == nullptr ? fallback : std::string(value);
}

// A fresh, empty folder under $TEST_TMPDIR.
std::string FreshDir(const std::string& name) {
  const std::string dir = EnvOr("TEST_TMPDIR", "/tmp") + "/" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// Every regular file below `folder`: relative path -> bytes.
std::map<std::string, std::string> Tree(const std::string& folder) {
  std::map<std::string, std::string> files;
  for (const fs::directory_entry& entry :
       fs::recursive_directory_iterator(folder)) {
    if (entry.is_regular_file()) {
      files[fs::relative(entry.path(), folder).string()] =
          ReadAll(entry.path().string());
    }
  }
  return files;
}

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 random(seed);
  std::string bytes(size, '\0');
  for (char& byte : bytes) byte = static_cast<char>(random() & 0xff);
  return bytes;
}

// A folder with nested files, a file of several chunks and an empty file;
// `tag` makes its content (and so its id) unique to a test.
void MakeArtifactFolder(const std::string& folder, const std::string& tag) {
  WriteFile(folder + "/config.json", "{\"tag\": \"" + tag + "\"}\n");
  WriteFile(folder + "/weights/model.bin",
            RandomBytes(2 * kMaxChunkBytes + 12345, tag.size()));
  WriteFile(folder + "/weights/empty.txt", "");
  WriteFile(folder + "/a/b/c/deep.txt", "deep " + tag);
}

int64_t TotalBytes(const std::map<std::string, std::string>& tree) {
  int64_t total = 0;
  for (const auto& [path, bytes] : tree) total += bytes.size();
  return total;
}

// The real lorad as a child process, on 127.0.0.1 with a free port, a
// SQLite file and an artifact root in a fresh folder.
class LoradChild {
 public:
  static absl::StatusOr<std::unique_ptr<LoradChild>> Start(
      const std::string& dir) {
    const std::string ports_file = dir + "/ports";
    const std::string log_file = dir + "/lorad.log";
    std::vector<std::string> args = {
        absl::StrCat(EnvOr("TEST_SRCDIR", "."), "/",
                     EnvOr("TEST_WORKSPACE", "__main__"), "/coordinator/lorad"),
        "--listen=127.0.0.1:0",
        "--http=",
        "--db=" + dir + "/runs.db",
        "--artifact_root=" + dir + "/artifacts",
        "--ports_file=" + ports_file,
    };
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const int log_fd = ::open(log_file.c_str(),
                              O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) return absl::InternalError("cannot open " + log_file);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return absl::InternalError("fork failed");
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(126);
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(log_fd);
    std::unique_ptr<LoradChild> child(new LoradChild(pid));
    const absl::Time give_up = absl::Now() + absl::Seconds(20);
    while (true) {
      int wait_status = 0;
      if (::waitpid(pid, &wait_status, WNOHANG) == pid) {
        child->pid_ = -1;
        return absl::FailedPreconditionError(
            absl::StrCat("lorad exited early; log:\n", ReadAll(log_file)));
      }
      for (absl::string_view line : absl::StrSplit(ReadAll(ports_file), '\n')) {
        if (absl::ConsumePrefix(&line, "grpc=") &&
            absl::SimpleAtoi(line, &child->port_)) {
          return child;
        }
      }
      if (absl::Now() > give_up) {
        return absl::DeadlineExceededError(
            absl::StrCat("lorad wrote no port; log:\n", ReadAll(log_file)));
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  ~LoradChild() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    int wait_status = 0;
    while (::waitpid(pid_, &wait_status, WNOHANG) == 0) {
      if (absl::Now() > give_up) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &wait_status, 0);
        break;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  explicit LoradChild(pid_t pid) : pid_(pid) {}

  pid_t pid_;
  int port_ = 0;
};

std::unique_ptr<CoordinatorChannel> ChannelTo(const std::string& address) {
  ChannelOptions options;
  options.address = address;
  absl::StatusOr<std::unique_ptr<CoordinatorChannel>> channel =
      CoordinatorChannel::Create(options);
  EXPECT_TRUE(channel.ok()) << channel.status();
  return channel.ok() ? std::move(*channel) : nullptr;
}

UploadOptions Timeout() {
  UploadOptions options;
  options.timeout = absl::Seconds(20);
  return options;
}

std::unique_ptr<ArtifactCache> OpenCache(
    const std::string& dir,
    std::function<void(int64_t)> on_bytes_downloaded = nullptr) {
  ArtifactCacheOptions options;
  options.dir = dir;
  options.download_timeout = absl::Seconds(20);
  options.on_bytes_downloaded = std::move(on_bytes_downloaded);
  absl::StatusOr<std::unique_ptr<ArtifactCache>> cache =
      ArtifactCache::Open(options);
  EXPECT_TRUE(cache.ok()) << cache.status();
  return cache.ok() ? std::move(*cache) : nullptr;
}

// One lorad for the whole suite (it starts in about a second); every test
// uploads content of its own, so their artifacts never collide.
class ArtifactTransferTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<LoradChild>> lorad =
        LoradChild::Start(FreshDir("lorad"));
    if (lorad.ok()) {
      lorad_ = lorad->release();
    } else {
      *start_error_ = lorad.status().ToString();
    }
  }

  static void TearDownTestSuite() {
    delete lorad_;
    lorad_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(lorad_, nullptr) << *start_error_;
    channel_ = ChannelTo(lorad_->address());
    ASSERT_NE(channel_, nullptr);
  }

  // Uploads `folder`, expecting success.
  UploadedArtifact Upload(const std::string& folder) {
    absl::StatusOr<UploadedArtifact> uploaded = UploadFolder(
        channel_.get(), folder, v1::ARTIFACT_KIND_DATASET, "", "", Timeout());
    EXPECT_TRUE(uploaded.ok()) << uploaded.status();
    return uploaded.ok() ? *uploaded : UploadedArtifact{};
  }

  static LoradChild* lorad_;
  static std::string* start_error_;
  std::unique_ptr<CoordinatorChannel> channel_;
};

LoradChild* ArtifactTransferTest::lorad_ = nullptr;
std::string* ArtifactTransferTest::start_error_ = new std::string;

TEST_F(ArtifactTransferTest, UploadedFolderFetchesByteIdentical) {
  const std::string source = FreshDir("identical/source");
  MakeArtifactFolder(source, "identical");
  const std::map<std::string, std::string> tree = Tree(source);
  ASSERT_THAT(tree, SizeIs(4));

  std::vector<int64_t> chunks;
  UploadOptions options = Timeout();
  options.on_bytes_sent = [&](int64_t bytes) { chunks.push_back(bytes); };
  absl::StatusOr<UploadedArtifact> uploaded =
      UploadFolder(channel_.get(), source, v1::ARTIFACT_KIND_DATASET,
                   "my-dataset", "", options);
  ASSERT_TRUE(uploaded.ok()) << uploaded.status();
  absl::StatusOr<sweep::ArtifactManifest> manifest =
      sweep::ManifestOfFolder(source);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(uploaded->artifact_id, manifest->artifact_id);
  EXPECT_FALSE(uploaded->already_existed);
  EXPECT_EQ(uploaded->bytes_sent, TotalBytes(tree));
  // model.bin takes three chunks; the three small files one each, the
  // empty one included.
  EXPECT_THAT(chunks, SizeIs(6));
  for (int64_t chunk : chunks) EXPECT_LE(chunk, kMaxChunkBytes);

  std::unique_ptr<ArtifactCache> cache = OpenCache(FreshDir("identical/cache"));
  ASSERT_NE(cache, nullptr);
  absl::StatusOr<std::string> path =
      cache->Fetch(channel_.get(), uploaded->artifact_id);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, cache->PathOf(uploaded->artifact_id));
  EXPECT_EQ(*path,
            absl::StrCat(cache->dir(), "/", uploaded->artifact_id.substr(7, 2),
                         "/", uploaded->artifact_id.substr(7)));
  EXPECT_EQ(Tree(*path), tree);
  EXPECT_EQ(cache->bytes_downloaded(), TotalBytes(tree));
  EXPECT_EQ(cache->downloads(), 1);
  EXPECT_THAT(Tree(cache->dir() + "/.staging"), IsEmpty());
}

TEST_F(ArtifactTransferTest, SecondUploadAndFetchReuseWhatExists) {
  const std::string source = FreshDir("twice/source");
  MakeArtifactFolder(source, "twice");
  const UploadedArtifact first = Upload(source);
  ASSERT_FALSE(first.artifact_id.empty());
  EXPECT_FALSE(first.already_existed);
  const UploadedArtifact second = Upload(source);
  EXPECT_EQ(second.artifact_id, first.artifact_id);
  EXPECT_TRUE(second.already_existed);

  const std::string dir = FreshDir("twice/cache");
  std::unique_ptr<ArtifactCache> cache = OpenCache(dir);
  ASSERT_NE(cache, nullptr);
  absl::StatusOr<std::string> path =
      cache->Fetch(channel_.get(), first.artifact_id);
  ASSERT_TRUE(path.ok()) << path.status();
  const int64_t downloaded = cache->bytes_downloaded();
  EXPECT_GT(downloaded, 0);

  absl::StatusOr<std::string> again =
      cache->Fetch(channel_.get(), first.artifact_id);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *path);
  EXPECT_EQ(cache->bytes_downloaded(), downloaded);
  EXPECT_EQ(cache->downloads(), 1);

  // A cached entry needs no coordinator at all, in a new cache object too
  // (a restarted worker).
  std::unique_ptr<ArtifactCache> reopened = OpenCache(dir);
  ASSERT_NE(reopened, nullptr);
  absl::StatusOr<std::string> offline =
      reopened->Fetch(nullptr, first.artifact_id);
  ASSERT_TRUE(offline.ok()) << offline.status();
  EXPECT_EQ(*offline, *path);
  EXPECT_EQ(reopened->bytes_downloaded(), 0);
  EXPECT_EQ(Tree(*offline), Tree(source));
}

TEST_F(ArtifactTransferTest, ConcurrentFetchesOfOneIdDownloadOnce) {
  const std::string source = FreshDir("concurrent/source");
  MakeArtifactFolder(source, "concurrent");
  const UploadedArtifact uploaded = Upload(source);
  ASSERT_FALSE(uploaded.artifact_id.empty());

  // The first download pauses after its first chunk, so that the others
  // arrive while it is in progress.
  std::atomic<bool> first_chunk{false};
  auto slow = [&](int64_t) {
    if (!first_chunk.exchange(true)) absl::SleepFor(absl::Milliseconds(500));
  };
  const std::string dir = FreshDir("concurrent/cache");
  std::unique_ptr<ArtifactCache> cache = OpenCache(dir, slow);
  // A second object on the same folder: what another worker process sees.
  std::unique_ptr<ArtifactCache> other = OpenCache(dir);
  ASSERT_NE(cache, nullptr);
  ASSERT_NE(other, nullptr);

  absl::StatusOr<std::string> paths[3];
  std::thread first(
      [&] { paths[0] = cache->Fetch(channel_.get(), uploaded.artifact_id); });
  while (!first_chunk.load()) absl::SleepFor(absl::Milliseconds(1));
  std::thread second(
      [&] { paths[1] = cache->Fetch(channel_.get(), uploaded.artifact_id); });
  std::thread third(
      [&] { paths[2] = other->Fetch(channel_.get(), uploaded.artifact_id); });
  first.join();
  second.join();
  third.join();

  for (const absl::StatusOr<std::string>& path : paths) {
    ASSERT_TRUE(path.ok()) << path.status();
    EXPECT_EQ(*path, cache->PathOf(uploaded.artifact_id));
  }
  EXPECT_EQ(cache->downloads() + other->downloads(), 1);
  EXPECT_EQ(cache->bytes_downloaded() + other->bytes_downloaded(),
            TotalBytes(Tree(source)));
  EXPECT_EQ(Tree(*paths[0]), Tree(source));
}

TEST_F(ArtifactTransferTest, UnknownIdIsNotFound) {
  std::unique_ptr<ArtifactCache> cache = OpenCache(FreshDir("unknown/cache"));
  ASSERT_NE(cache, nullptr);
  const std::string unknown = "sha256:" + std::string(64, '0');
  absl::StatusOr<std::string> path = cache->Fetch(channel_.get(), unknown);
  EXPECT_TRUE(absl::IsNotFound(path.status())) << path.status();
  EXPECT_FALSE(fs::exists(cache->PathOf(unknown)));
  EXPECT_THAT(Tree(cache->dir() + "/.staging"), IsEmpty());

  path = cache->Fetch(channel_.get(), "sha256:ABC");
  EXPECT_TRUE(absl::IsInvalidArgument(path.status())) << path.status();
  EXPECT_EQ(cache->PathOf("sha256:ABC"), "");
}

TEST_F(ArtifactTransferTest, FileChangedDuringUploadIsAborted) {
  const std::string source = FreshDir("changing/source");
  MakeArtifactFolder(source, "changing");
  absl::StatusOr<sweep::ArtifactManifest> manifest =
      sweep::ManifestOfFolder(source);
  ASSERT_TRUE(manifest.ok()) << manifest.status();

  // After the first chunk of model.bin (the fourth chunk sent: files go in
  // path order, after a/b/c/deep.txt, config.json and weights/empty.txt)
  // its bytes change in place, keeping its size.
  int chunks = 0;
  UploadOptions options = Timeout();
  options.on_bytes_sent = [&](int64_t) {
    if (++chunks != 4) return;
    std::fstream file(source + "/weights/model.bin",
                      std::ios::binary | std::ios::in | std::ios::out);
    file.seekp(kMaxChunkBytes + 10);
    file << "changed";
  };
  absl::StatusOr<UploadedArtifact> uploaded =
      UploadFolder(channel_.get(), source,
                   v1::ARTIFACT_KIND_TRAINING_CHECKPOINT, "", "", options);
  EXPECT_TRUE(absl::IsAborted(uploaded.status())) << uploaded.status();
  EXPECT_THAT(uploaded.status().message(), HasSubstr("weights/model.bin"));
  EXPECT_GE(chunks, 4);

  // Nothing was stored under the id of the original content.
  std::unique_ptr<ArtifactCache> cache = OpenCache(FreshDir("changing/cache"));
  ASSERT_NE(cache, nullptr);
  absl::StatusOr<std::string> path =
      cache->Fetch(channel_.get(), manifest->artifact_id);
  EXPECT_TRUE(absl::IsNotFound(path.status())) << path.status();

  // A file that shrinks is caught as well.
  chunks = 0;
  options.on_bytes_sent = [&](int64_t) {
    if (++chunks == 4) fs::resize_file(source + "/weights/model.bin", 100);
  };
  uploaded =
      UploadFolder(channel_.get(), source,
                   v1::ARTIFACT_KIND_TRAINING_CHECKPOINT, "", "", options);
  EXPECT_TRUE(absl::IsAborted(uploaded.status())) << uploaded.status();
}

TEST_F(ArtifactTransferTest, SnapshotKeepsOldBytesAfterReplaceByRename) {
  const std::string source = FreshDir("snapshot/checkpoint");
  WriteFile(source + "/model.safetensors", "old weights");
  WriteFile(source + "/optimizer/state.bin", RandomBytes(5000, 7));
  WriteFile(source + "/empty", "");
  const std::map<std::string, std::string> before = Tree(source);
  absl::StatusOr<sweep::ArtifactManifest> manifest =
      sweep::ManifestOfFolder(source);
  ASSERT_TRUE(manifest.ok()) << manifest.status();

  const std::string snapshots = FreshDir("snapshot_out") + "/snapshots";
  absl::StatusOr<std::string> snapshot = SnapshotFolder(source, snapshots);
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_THAT(*snapshot, HasSubstr(snapshots + "/checkpoint."));
  EXPECT_EQ(Tree(*snapshot), before);

  // The trainer writes its next checkpoint and renames it over the old.
  WriteFile(source + "/model.safetensors.tmp", "new weights!");
  ASSERT_EQ(::rename((source + "/model.safetensors.tmp").c_str(),
                     (source + "/model.safetensors").c_str()),
            0);
  WriteFile(source + "/optimizer/state.bin.tmp", "new state");
  ASSERT_EQ(::rename((source + "/optimizer/state.bin.tmp").c_str(),
                     (source + "/optimizer/state.bin").c_str()),
            0);
  EXPECT_EQ(Tree(*snapshot), before);

  const UploadedArtifact uploaded = Upload(*snapshot);
  EXPECT_EQ(uploaded.artifact_id, manifest->artifact_id);

  // Two snapshots of one folder do not collide; removal is complete.
  absl::StatusOr<std::string> next = SnapshotFolder(source, snapshots);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_NE(*next, *snapshot);
  EXPECT_EQ(ReadAll(*next + "/model.safetensors"), "new weights!");
  ASSERT_TRUE(RemoveTree(*snapshot).ok());
  ASSERT_TRUE(RemoveTree(*next).ok());
  EXPECT_FALSE(fs::exists(*snapshot));
  EXPECT_TRUE(fs::is_empty(snapshots));
  EXPECT_TRUE(RemoveTree(*snapshot).ok());  // already gone: OK
}

TEST(SnapshotFolderTest, SnapshotInsideTheFolderLeavesItselfOut) {
  const std::string dir = FreshDir("snapshot_inside");
  WriteFile(dir + "/weights.bin", "weights");
  absl::StatusOr<std::string> first = SnapshotFolder(dir, dir + "/.snapshots");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(Tree(*first),
            (std::map<std::string, std::string>{{"weights.bin", "weights"}}));
  // The second one copies the first but not itself.
  absl::StatusOr<std::string> second = SnapshotFolder(dir, dir + "/.snapshots");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_THAT(Tree(*second), SizeIs(2));
}

TEST(SnapshotFolderTest, RejectsMissingFolderAndSymlinks) {
  const std::string dir = FreshDir("snapshot_errors");
  absl::StatusOr<std::string> snapshot =
      SnapshotFolder(dir + "/missing", dir + "/snapshots");
  EXPECT_TRUE(absl::IsNotFound(snapshot.status())) << snapshot.status();

  WriteFile(dir + "/source/file", "x");
  fs::create_symlink("/etc/passwd", dir + "/source/link");
  snapshot = SnapshotFolder(dir + "/source", dir + "/snapshots");
  EXPECT_TRUE(absl::IsInvalidArgument(snapshot.status())) << snapshot.status();
  EXPECT_THAT(snapshot.status().message(), HasSubstr("link"));
  // The partial snapshot is gone.
  EXPECT_TRUE(fs::is_empty(dir + "/snapshots"));
}

TEST(ArtifactCacheTest, OpenRemovesOnlyUnlockedStaging) {
  const std::string dir = FreshDir("stale_cache");
  const std::string crashed(64, 'a');
  const std::string busy(64, 'b');
  WriteFile(dir + "/.staging/" + crashed + "/half/written.bin", "partial");
  WriteFile(dir + "/.staging/" + busy + "/file", "in progress");
  // Another process fetching `busy` holds its lock.
  fs::create_directories(dir + "/.locks");
  const std::string lock_path = dir + "/.locks/" + busy + ".lock";
  const int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(lock, 0);
  ASSERT_EQ(::flock(lock, LOCK_EX), 0);

  std::unique_ptr<ArtifactCache> cache = OpenCache(dir);
  ASSERT_NE(cache, nullptr);
  EXPECT_FALSE(fs::exists(dir + "/.staging/" + crashed));
  EXPECT_TRUE(fs::exists(dir + "/.staging/" + busy + "/file"));
  ::close(lock);
}

// ---------------------------------------------------------------------------
// A coordinator that streams whatever a test scripts, for what a real one
// never sends.
// ---------------------------------------------------------------------------

class ScriptedService : public v1::WorkerService::Service {
 public:
  grpc::Status DownloadArtifact(
      grpc::ServerContext*, const v1::DownloadArtifactRequest*,
      grpc::ServerWriter<v1::DownloadArtifactResponse>* writer) override {
    for (const v1::DownloadArtifactResponse& response : script) {
      if (!writer->Write(response)) break;
    }
    return grpc::Status::OK;
  }

  std::vector<v1::DownloadArtifactResponse> script;
};

v1::DownloadArtifactResponse ManifestMessage(
    const std::vector<sweep::ArtifactFileEntry>& files,
    const std::string& artifact_id) {
  v1::DownloadArtifactResponse response;
  v1::Artifact& artifact = *response.mutable_manifest();
  artifact.set_artifact_id(artifact_id);
  int64_t size = 0;
  for (const sweep::ArtifactFileEntry& file : files) {
    v1::ArtifactFile& out = *artifact.add_files();
    out.set_path(file.path);
    out.set_size_bytes(file.size_bytes);
    out.set_sha256(file.sha256);
    size += file.size_bytes;
  }
  artifact.set_size_bytes(size);
  return response;
}

v1::DownloadArtifactResponse ChunkMessage(const std::string& path,
                                          int64_t offset,
                                          const std::string& data) {
  v1::DownloadArtifactResponse response;
  response.mutable_chunk()->set_path(path);
  response.mutable_chunk()->set_offset(offset);
  response.mutable_chunk()->set_data(data);
  return response;
}

class ScriptedDownloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = ChannelTo(absl::StrCat("127.0.0.1:", port));
    ASSERT_NE(channel_, nullptr);
    root_ = FreshDir("scripted");
    cache_ = OpenCache(root_ + "/cache");
    ASSERT_NE(cache_, nullptr);
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  // Fetches `artifact_id` from the script and expects DataLoss with
  // `message` and nothing left behind.
  void ExpectDataLoss(const std::string& artifact_id,
                      const std::string& message) {
    absl::StatusOr<std::string> path =
        cache_->Fetch(channel_.get(), artifact_id);
    EXPECT_EQ(path.status().code(), absl::StatusCode::kDataLoss)
        << path.status();
    EXPECT_THAT(path.status().message(), HasSubstr(message));
    EXPECT_FALSE(fs::exists(cache_->PathOf(artifact_id)));
    EXPECT_THAT(Tree(cache_->dir() + "/.staging"), IsEmpty());
  }

  ScriptedService service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<CoordinatorChannel> channel_;
  std::string root_;
  std::unique_ptr<ArtifactCache> cache_;
};

sweep::ArtifactFileEntry Entry(const std::string& path,
                               const std::string& bytes) {
  return {path, static_cast<int64_t>(bytes.size()), Sha256Hex(bytes)};
}

TEST_F(ScriptedDownloadTest, WellFormedStreamIsAccepted) {
  // Control for the tests below: empty files may come without a chunk.
  const std::vector<sweep::ArtifactFileEntry> files = {
      Entry("a.txt", "hello"), Entry("b/empty", ""), Entry("c.txt", "bye")};
  const std::string id = sweep::ArtifactIdOf(files);
  service_.script = {ManifestMessage(files, id), ChunkMessage("a.txt", 0, "he"),
                     ChunkMessage("a.txt", 2, "llo"),
                     ChunkMessage("c.txt", 0, "bye")};
  absl::StatusOr<std::string> path = cache_->Fetch(channel_.get(), id);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(Tree(*path),
            (std::map<std::string, std::string>{
                {"a.txt", "hello"}, {"b/empty", ""}, {"c.txt", "bye"}}));
}

TEST_F(ScriptedDownloadTest, ManifestOfAnotherIdIsDataLoss) {
  const std::vector<sweep::ArtifactFileEntry> files = {Entry("a.txt", "x")};
  const std::string asked = "sha256:" + std::string(64, 'c');
  service_.script = {ManifestMessage(files, sweep::ArtifactIdOf(files)),
                     ChunkMessage("a.txt", 0, "x")};
  ExpectDataLoss(asked, "when asked for");
}

TEST_F(ScriptedDownloadTest, PathEscapingTheFolderIsRejected) {
  const std::vector<sweep::ArtifactFileEntry> files = {
      Entry("../../escaped.txt", "evil")};
  const std::string id = sweep::ArtifactIdOf(files);
  service_.script = {ManifestMessage(files, id),
                     ChunkMessage("../../escaped.txt", 0, "evil")};
  ExpectDataLoss(id, "malformed manifest");
  EXPECT_FALSE(fs::exists(root_ + "/escaped.txt"));
  EXPECT_FALSE(fs::exists(root_ + "/cache/escaped.txt"));
}

TEST_F(ScriptedDownloadTest, BytesThatDoNotMatchTheHashAreDataLoss) {
  const std::vector<sweep::ArtifactFileEntry> files = {Entry("a.txt", "good")};
  const std::string id = sweep::ArtifactIdOf(files);
  service_.script = {ManifestMessage(files, id),
                     ChunkMessage("a.txt", 0, "evil")};
  ExpectDataLoss(id, "sha256");
}

TEST_F(ScriptedDownloadTest, TruncatedStreamIsDataLoss) {
  const std::vector<sweep::ArtifactFileEntry> files = {Entry("a.txt", "hello"),
                                                       Entry("b.txt", "world")};
  const std::string id = sweep::ArtifactIdOf(files);
  service_.script = {ManifestMessage(files, id),
                     ChunkMessage("a.txt", 0, "hello")};
  ExpectDataLoss(id, "0 of the 5 bytes of \"b.txt\"");
}

TEST_F(ScriptedDownloadTest, OutOfOrderChunksAreDataLoss) {
  const std::vector<sweep::ArtifactFileEntry> files = {Entry("a.txt", "hello"),
                                                       Entry("b.txt", "world")};
  const std::string id = sweep::ArtifactIdOf(files);
  service_.script = {ManifestMessage(files, id), ChunkMessage("a.txt", 0, "he"),
                     ChunkMessage("a.txt", 3, "lo")};
  ExpectDataLoss(id, "expected offset 2");
  service_.script = {ManifestMessage(files, id),
                     ChunkMessage("b.txt", 0, "world"),
                     ChunkMessage("a.txt", 0, "hello")};
  ExpectDataLoss(id, "0 of the 5 bytes of \"a.txt\"");
}

}  // namespace
}  // namespace lora::worker
