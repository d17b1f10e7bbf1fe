// Moving artifacts between a worker and the coordinator: uploading a folder
// (UploadFolder), taking a stable copy of a folder that another process may
// rewrite (SnapshotFolder), and the worker's local content-addressed cache of
// downloaded artifacts (ArtifactCache).
//
// Artifacts are content-addressed folders (sweep/artifact_manifest.h); both
// directions use the streams of WorkerService (worker_service.proto): the
// manifest first, then every file's bytes in manifest order, in chunks of at
// most kMaxChunkBytes.
//
// Errors returned by the coordinator keep their gRPC status code
// (FromGrpcStatus), with the message prefixed by what was being done.
#ifndef LORA_SWEEP_WORKER_ARTIFACT_TRANSFER_H_
#define LORA_SWEEP_WORKER_ARTIFACT_TRANSFER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/coordinator_channel.h"

namespace lora::worker {

// Largest ArtifactChunk.data sent or accepted (1 MiB, as the protocol says).
inline constexpr int64_t kMaxChunkBytes = int64_t{1} << 20;

struct UploadOptions {
  // Deadline of the whole UploadArtifact call (infinite = none).
  absl::Duration timeout = absl::InfiniteDuration();
  // Called on the uploading thread after each chunk has been handed to
  // gRPC, with the number of file bytes in it (progress, metrics).
  std::function<void(int64_t bytes)> on_bytes_sent;
};

// What UploadFolder returns.
struct UploadedArtifact {
  std::string artifact_id;  // "sha256:<64 hex>"
  // True when the coordinator already held the artifact (the bytes were
  // still sent: the protocol has the coordinator check them).
  bool already_existed = false;
  // File bytes sent (the artifact's size when the upload succeeds).
  int64_t bytes_sent = 0;
};

// Uploads every regular file under `folder` as one artifact: builds its
// manifest (sweep::ManifestOfFolder, which hashes every file), then sends it
// on one UploadArtifact stream followed by every file's bytes in manifest
// order, in chunks of at most kMaxChunkBytes (an empty file as one empty
// chunk), reading the files again with plain POSIX reads. `kind` is a
// lora.v1.ArtifactKind value, `name` the artifact's human-readable name (""
// = the folder's base name), `run_id` the producing run ("" for none).
//
// The folder must not change during the call: a file whose size or sha256
// differs from the manifest when it is sent fails the upload with Aborted
// naming the file, and the stream is cancelled before that file's last
// chunk, so the coordinator stores nothing. Upload a SnapshotFolder copy of
// a folder that may be rewritten.
//
// Errors: those of ManifestOfFolder (NotFound, InvalidArgument for a folder
// with no files or a symlink, ...); Aborted as above; Internal for local
// I/O errors, naming the path; the coordinator's status, code kept
// (InvalidArgument, Unauthenticated, Unavailable, DeadlineExceeded, ...).
// InvalidArgument for a null channel.
//
// Thread-safe: concurrent calls (one stream each) may share a channel.
absl::StatusOr<UploadedArtifact> UploadFolder(
    CoordinatorChannel* channel, const std::string& folder, int kind,
    const std::string& name, const std::string& run_id,
    const UploadOptions& options = {});

// Copies the regular files of `folder` (recursively, keeping relative paths
// and subfolders) into a fresh folder "<snapshot_dir>/<base name>.XXXXXX"
// (snapshot_dir is created if missing) and returns its path. Each file is
// hard-linked when possible (same file system, permitted) and copied
// otherwise.
//
// Meant for a folder that a writer replaces file by file with rename(2),
// e.g. a trainer's checkpoint: a hard link keeps the inode the name pointed
// to when it was linked, so the snapshot does not change afterwards. A
// writer that rewrites a file in place changes a hard-linked snapshot too
// (UploadFolder then fails with Aborted, and the caller snapshots again).
// Files are taken one after the other, so a snapshot taken while the writer
// replaces several files may mix old and new ones; `folder` is opened
// first, so a writer that swaps in a whole new folder by renaming does not
// affect a snapshot in progress.
//
// Errors (the partial snapshot is removed): NotFound when `folder` does not
// exist; InvalidArgument when it is not a folder or holds a symlink, socket,
// fifo or device (as ManifestOfFolder); Aborted when an entry disappears
// while it is being copied (retrying may succeed); Internal for other I/O
// errors. Each names the path. Thread-safe.
absl::StatusOr<std::string> SnapshotFolder(const std::string& folder,
                                           const std::string& snapshot_dir);

// Removes `path` and everything below it, following no symlink (a symlink
// is removed, not its target). OK when `path` does not exist. Internal
// naming the path otherwise. For removing a snapshot once uploaded.
absl::Status RemoveTree(const std::string& path);

struct ArtifactCacheOptions {
  // The cache's folder; created if missing. May be shared by several worker
  // processes at once.
  std::string dir;
  // Deadline of each DownloadArtifact call (infinite = none).
  absl::Duration download_timeout = absl::InfiniteDuration();
  // Called with the size of every chunk received, on the fetching thread
  // (e.g. a lora_worker_artifact_download_bytes_total counter). Must be
  // thread-safe when Fetch is called from several threads.
  std::function<void(int64_t bytes)> on_bytes_downloaded;
};

// A local content-addressed cache of artifacts:
//
//   <dir>/<first 2 hex of the id>/<64 hex of the id>/<files, as listed>
//   <dir>/.staging/<64 hex>/      a download in progress (or left by a crash)
//   <dir>/.locks/<64 hex>.lock    flock(2)ed while the id is being fetched
//
// An entry appears only by one rename(2) of a staging folder whose every
// file was checked (and fsynced) and is never written again, so an entry
// that exists is complete. Lock files are kept (removing them would race
// with the next fetch); they are empty.
//
// Thread safety: Fetch may be called from many threads, and by several
// processes sharing `dir`, at once. Fetches of one id are serialised by an
// flock on its lock file: one downloads, the others wait for it and then
// return its entry without a download (or download themselves if it
// failed). Nothing ever deletes entries; a caller may use them for as long
// as it wants.
class ArtifactCache {
 public:
  // Creates the cache's folders if missing and removes staging folders left
  // by crashed fetches (those whose id lock nobody holds). InvalidArgument
  // for an empty dir; Internal for I/O errors, naming the path.
  static absl::StatusOr<std::unique_ptr<ArtifactCache>> Open(
      const ArtifactCacheOptions& options);

  ArtifactCache(const ArtifactCache&) = delete;
  ArtifactCache& operator=(const ArtifactCache&) = delete;

  // The local folder holding artifact `artifact_id` (PathOf), downloading it
  // from the coordinator through `channel` first unless the cache has it;
  // a cached entry is returned without any call to the coordinator
  // (`channel` may then be null).
  //
  // A download goes into <dir>/.staging/<hex> and is checked as it arrives:
  // the manifest must be well formed (sweep::VerifyManifest: every path
  // valid, so no file is written outside the staging folder, which is
  // walked without following symlinks) and name `artifact_id`; the chunks
  // must come file by file in manifest order without gaps or overlaps; each
  // file must end with the manifest's size and sha256. Then the staging
  // folder is renamed into place.
  //
  // Errors (nothing is left in the cache): InvalidArgument for a value that
  // is not an artifact id or a null channel when a download is needed; the
  // coordinator's status, code kept (NotFound for an artifact it does not
  // hold, Unavailable, DeadlineExceeded, ...); DataLoss when what it sent
  // does not match the rules above, naming the file; Internal for local I/O
  // errors, naming the path.
  absl::StatusOr<std::string> Fetch(CoordinatorChannel* channel,
                                    const std::string& artifact_id);

  // "<dir>/<first 2 hex>/<64 hex>" (no trailing '/') for a valid artifact
  // id, whether or not the cache holds it; "" for anything else.
  std::string PathOf(const std::string& artifact_id) const;

  const std::string& dir() const { return dir_; }

  // Bytes received by this object's downloads (failed ones included) and
  // the number of downloads it completed; other processes sharing the
  // folder are not counted.
  int64_t bytes_downloaded() const { return bytes_downloaded_.load(); }
  int64_t downloads() const { return downloads_.load(); }

 private:
  explicit ArtifactCache(const ArtifactCacheOptions& options);

  // Holds the flock of `hex`'s lock file until the returned fd is closed.
  absl::StatusOr<int> LockId(const std::string& hex, bool wait) const;
  // Downloads `artifact_id` into the empty folder `staging`.
  absl::Status Download(CoordinatorChannel* channel,
                        const std::string& artifact_id,
                        const std::string& staging);
  // Removes staging folders whose lock is free.
  absl::Status RemoveStaleStaging();

  const std::string dir_;
  const ArtifactCacheOptions options_;
  std::atomic<int64_t> bytes_downloaded_{0};
  std::atomic<int64_t> downloads_{0};
};

}  // namespace lora::worker

#endif  // LORA_SWEEP_WORKER_ARTIFACT_TRANSFER_H_
