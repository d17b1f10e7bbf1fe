// The coordinator's artifact storage: content-addressed folders of files
// under one root folder, with their records in the RunStore. The core of the
// UploadArtifact and DownloadArtifact RPCs (both services), free of gRPC.
//
// Layout under the root:
//
//   <root>/<first 2 hex of the id>/<64 hex of the id>/<files, as listed>
//   <root>/.staging/<unique>/    uploads in progress (removed on Open)
//   <root>/.lock                 held (flock) while an ArtifactStore is open
//
// An upload is a session: BeginUpload checks the manifest
// (sweep::VerifyManifest, size limits), Write takes the files' bytes in
// manifest order (files in manifest order, each file's chunks in order
// without gaps), hashing them as they arrive, and Finish checks every file's
// size and sha256 against the manifest, then publishes the staged folder
// with one rename and stores its ArtifactRecord (RunStore::PutArtifact).
// Any mismatch fails with InvalidArgument naming the file, ends the session
// and removes its staging folder: nothing is published. A published folder
// is never written again.
//
// Paths never leave the root: every file path is checked with
// sweep::ValidateArtifactPath and every folder below the root is opened one
// component at a time without following symlinks (O_NOFOLLOW).
//
// Thread safety: ArtifactStore's methods may be called from many threads at
// once, sessions and readers of the same or different artifacts included.
// An UploadSession or ArtifactReader is used by one thread at a time.
// Uploads of the same artifact may run at once: exactly one of them stores
// it (already_existed = false), the others finish with already_existed =
// true, and the published folder is the first one renamed into place.
//
// One ArtifactStore per root at a time (Open takes a lock on the root,
// since it removes the staging folders it finds): a second Open of the same
// root, in this process or another, fails with FailedPrecondition.
#ifndef LORA_SWEEP_COORDINATOR_ARTIFACT_STORE_H_
#define LORA_SWEEP_COORDINATOR_ARTIFACT_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coordinator/run_store.h"
#include "sweep/artifact_manifest.h"

namespace lora {
class Sha256;
}  // namespace lora

namespace lora::coordinator {

struct ArtifactStoreOptions {
  // Largest artifact BeginUpload accepts (sum of its files' sizes).
  int64_t max_artifact_bytes = int64_t{8} << 30;  // 8 GiB
  // Most files one artifact may hold.
  int64_t max_files = 100000;
  // Largest file ReadFile returns whole.
  int64_t max_read_file_bytes = int64_t{16} << 20;  // 16 MiB
  // Whether readers hash every file they stream and fail with DataLoss
  // when the bytes on disk no longer match the record. Sizes are always
  // checked.
  bool verify_reads = true;
};

// What Finish returns.
struct UploadResult {
  // As stored; when the artifact already existed, the record stored first
  // (its kind, name, run id and create time), not this upload's.
  ArtifactRecord artifact;
  bool already_existed = false;
};

// A piece of one file of an artifact.
struct FileChunk {
  std::string path;  // as in the manifest
  int64_t offset = 0;
  std::string data;  // at most ArtifactStore::kMaxChunkBytes
};

class ArtifactStore;

// One upload in progress (ArtifactStore::BeginUpload). Destroying a session
// that did not finish aborts it. It must not outlive its ArtifactStore.
class UploadSession {
 public:
  ~UploadSession();
  UploadSession(const UploadSession&) = delete;
  UploadSession& operator=(const UploadSession&) = delete;

  const sweep::ArtifactManifest& manifest() const { return manifest_; }
  const std::string& artifact_id() const { return manifest_.artifact_id; }

  // True when the store already held the artifact when the session began.
  // The bytes written are then hashed and checked but not stored, and
  // Finish returns already_existed; Finish still requires every file whole,
  // so a caller that wants to skip the transfer answers without the session
  // (check ArtifactStore::Exists first, or drop this session with Abort).
  bool existed_at_begin() const { return verify_only_; }

  // Takes the next chunk: `path` must be the file being written (or a
  // later one, when the current file is complete and those in between are
  // empty: an empty file needs no chunk), `offset`
  // the number of its bytes received so far, and offset + data.size() at
  // most the file's size. `data` is at most kMaxChunkBytes; an empty chunk
  // is allowed. InvalidArgument naming the path and offset otherwise (a
  // file not in the manifest, a file that comes before the current one, a
  // gap or overlap, a chunk past the file's size, a file skipped before it
  // was complete, a complete file whose sha256 differs from the manifest's);
  // the session then ends and its staging folder is removed. Internal for
  // I/O errors (same effect). FailedPrecondition once the session has ended.
  absl::Status Write(absl::string_view path, int64_t offset,
                     absl::string_view data);

  // Checks that every file was received whole (InvalidArgument naming the
  // first that was not, and its size so far) and matches its sha256, then
  // publishes the folder and stores its record with create_ms = now_ms.
  // The session ends either way. Errors of the run store are returned
  // unchanged (the folder may then be published without a record: a later
  // upload of the same artifact records it). FailedPrecondition once the
  // session has ended.
  absl::StatusOr<UploadResult> Finish(int64_t now_ms);

  // Ends the session and removes its staging folder. No-op once ended.
  void Abort();

 private:
  friend class ArtifactStore;
  enum class State { kOpen, kEnded };

  UploadSession(ArtifactStore* store, sweep::ArtifactManifest manifest,
                int64_t kind, std::string name, std::string run_id,
                bool verify_only);

  absl::Status Fail(absl::Status status);
  absl::Status StartFile();
  absl::Status CompleteFile();
  // Syncs the staged folder and renames it into place (OK too when an
  // upload of the same artifact got there first).
  absl::Status Publish();
  void Cleanup();
  // The staged `relative` path, for messages.
  std::string Shown(absl::string_view relative) const;

  ArtifactStore* const store_;
  const sweep::ArtifactManifest manifest_;
  const int64_t kind_;
  const std::string name_;
  const std::string run_id_;
  const bool verify_only_;
  State state_ = State::kOpen;

  std::string staging_name_;  // under <root>/.staging; "" once removed
  int staging_fd_ = -1;
  // The folder of the last file created, kept open until it is left so that
  // its entries are synced once (-1 before the first).
  std::string dir_path_;
  int dir_fd_ = -1;
  // The file being received: manifest_.files[cursor_]; started_ once its
  // file is created and its hash begun.
  size_t cursor_ = 0;
  bool started_ = false;
  int file_fd_ = -1;
  int64_t written_ = 0;
  std::unique_ptr<Sha256> hash_;
};

// Streams an artifact's files (ArtifactStore::OpenReader): every file in
// manifest order, each in chunks of at most kMaxChunkBytes, an empty file
// as one empty chunk. Independent of its ArtifactStore once open.
class ArtifactReader {
 public:
  ~ArtifactReader();
  ArtifactReader(const ArtifactReader&) = delete;
  ArtifactReader& operator=(const ArtifactReader&) = delete;

  const ArtifactRecord& artifact() const { return artifact_; }

  // Fills `chunk` with the next chunk and returns true, or returns false
  // after the last one. DataLoss naming the file when the bytes on disk do
  // not match the record (size; sha256 when verify_reads); Internal for I/O
  // errors. After an error the reader is done.
  absl::StatusOr<bool> Next(FileChunk* chunk);

 private:
  friend class ArtifactStore;
  // Takes ownership of `folder_fd`, the artifact's open folder.
  ArtifactReader(ArtifactRecord artifact, int folder_fd, bool verify,
                 std::string shown_folder);
  absl::Status Fail(absl::Status status);

  const ArtifactRecord artifact_;
  int folder_fd_;
  const bool verify_;
  const std::string shown_folder_;  // the folder's path, for messages
  bool done_ = false;
  size_t index_ = 0;  // file being read
  int file_fd_ = -1;
  int64_t offset_ = 0;
  std::unique_ptr<Sha256> hash_;
};

class ArtifactStore {
 public:
  // Largest chunk a reader yields and Write accepts (ArtifactChunk.data).
  static constexpr int64_t kMaxChunkBytes = int64_t{1} << 20;

  // Opens the store rooted at `root` (created if missing; it may be reached
  // through a symlink), removing the staging folders of uploads that a
  // crash interrupted. `records` holds the artifacts' records; it is not
  // owned and must outlive the store. InvalidArgument for an empty root, a
  // null `records` or options < 1; FailedPrecondition when another
  // ArtifactStore holds the root; Internal for I/O errors, naming the path.
  static absl::StatusOr<std::unique_ptr<ArtifactStore>> Open(
      const std::string& root, RunStore* records,
      const ArtifactStoreOptions& options = {});

  ~ArtifactStore();
  ArtifactStore(const ArtifactStore&) = delete;
  ArtifactStore& operator=(const ArtifactStore&) = delete;

  const std::string& root() const { return root_; }
  const ArtifactStoreOptions& options() const { return options_; }

  // True when the artifact's record and its folder are both present.
  // InvalidArgument for a value that is not an artifact id; errors of the
  // run store other than NotFound.
  absl::StatusOr<bool> Exists(const std::string& artifact_id);

  // Starts an upload. InvalidArgument when the manifest is malformed
  // (sweep::VerifyManifest); ResourceExhausted when it is larger than
  // max_artifact_bytes or lists more than max_files files. `kind` is a
  // lora.v1.ArtifactKind value, `run_id` "" for none; neither is checked
  // here. When the artifact already exists the session only checks the
  // bytes it is given (UploadSession::existed_at_begin).
  absl::StatusOr<std::unique_ptr<UploadSession>> BeginUpload(
      const sweep::ArtifactManifest& manifest, int64_t kind,
      const std::string& name, const std::string& run_id);

  // The artifact's record. InvalidArgument for a value that is not an
  // artifact id; NotFound when it is unknown or its folder is missing (it
  // can then be uploaded again).
  absl::StatusOr<ArtifactRecord> Get(const std::string& artifact_id);

  // A reader of the artifact's files. Errors as Get's.
  absl::StatusOr<std::unique_ptr<ArtifactReader>> OpenReader(
      const std::string& artifact_id);

  // Calls `sink` with every chunk of the artifact (as ArtifactReader yields
  // them) until the last one or until `sink` returns false, and returns OK
  // in both cases. Errors as Get's and ArtifactReader::Next's.
  using ChunkSink = std::function<bool(const std::string& path, int64_t offset,
                                       absl::string_view data)>;
  absl::Status ForEachChunk(const std::string& artifact_id,
                            const ChunkSink& sink);

  // One file of the artifact, whole (e.g. a base checkpoint's config.json).
  // InvalidArgument for a malformed id or path; NotFound for an unknown
  // artifact or a path it does not hold; ResourceExhausted for a file
  // larger than max_read_file_bytes; DataLoss when the bytes on disk do not
  // match the record.
  absl::StatusOr<std::string> ReadFile(const std::string& artifact_id,
                                       const std::string& path);

 private:
  friend class UploadSession;

  ArtifactStore(std::string root, RunStore* records,
                const ArtifactStoreOptions& options, int root_fd, int lock_fd,
                int staging_fd);

  // A fresh, empty folder under .staging: its name and an open fd.
  absl::Status CreateStaging(std::string* name, int* fd);
  void RemoveStaging(const std::string& name);
  // Opens <root>/<xx>/<hex> (-1 with OK status when it does not exist).
  absl::StatusOr<int> OpenFolder(const std::string& artifact_id);

  const std::string root_;
  RunStore* const records_;
  const ArtifactStoreOptions options_;
  const int root_fd_;
  const int lock_fd_;
  const int staging_fd_;  // <root>/.staging
  std::atomic<int64_t> next_staging_{0};
};

}  // namespace lora::coordinator

#endif  // LORA_SWEEP_COORDINATOR_ARTIFACT_STORE_H_
