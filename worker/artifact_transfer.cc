#include "worker/artifact_transfer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "base/grpc_status.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "base/status_text.h"
#include "lora/v1/common.pb.h"
#include "lora/v1/worker_service.grpc.pb.h"
#include "sweep/artifact_manifest.h"

namespace lora::worker {
namespace {

constexpr char kStagingFolder[] = ".staging";
constexpr char kLocksFolder[] = ".locks";
constexpr size_t kIdPrefixSize = 7;  // "sha256:"
constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

// Owns a file descriptor in a scope that may return early.
class ScopedFd {
 public:
  explicit ScopedFd(int fd = -1) : fd_(fd) {}
  ~ScopedFd() { reset(-1); }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// Reads up to `size` bytes, fewer only at the end of the file.
absl::StatusOr<size_t> ReadFully(int fd, char* data, size_t size,
                                 absl::string_view shown) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(fd, data + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read", shown);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

absl::Status WriteFully(int fd, absl::string_view data,
                        absl::string_view shown) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write", shown);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status SyncFd(int fd, absl::string_view shown) {
  if (::fsync(fd) != 0) return ErrnoStatus(errno, "fsync", shown);
  return absl::OkStatus();
}

// Opens `relative` (a valid artifact path) below the folder `root_fd` one
// component at a time, following no symlink, the last component with
// `flags` and `mode`. With `create_folders`, missing folders on the way are
// created. `shown_root` names the root in messages.
absl::StatusOr<int> OpenBeneath(int root_fd, absl::string_view relative,
                                int flags, mode_t mode, bool create_folders,
                                absl::string_view shown_root) {
  const std::vector<absl::string_view> parts = absl::StrSplit(relative, '/');
  ScopedFd folder;
  int at = root_fd;
  std::string shown(shown_root);
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    const std::string part(parts[i]);
    absl::StrAppend(&shown, "/", part);
    if (create_folders && ::mkdirat(at, part.c_str(), 0755) != 0 &&
        errno != EEXIST) {
      return ErrnoStatus(errno, "create folder", QuotedForMessage(shown));
    }
    const int next = ::openat(at, part.c_str(), kDirFlags);
    if (next < 0)
      return ErrnoStatus(errno, "open folder", QuotedForMessage(shown));
    folder.reset(next);
    at = next;
  }
  const std::string last(parts.back());
  absl::StrAppend(&shown, "/", last);
  const int fd =
      ::openat(at, last.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoStatus(errno, "open", QuotedForMessage(shown));
  return fd;
}

// The names in the open folder `folder_fd` (its offset is not used), sorted.
absl::StatusOr<std::vector<std::string>> ListFolder(int folder_fd,
                                                    absl::string_view shown) {
  const int fd = ::openat(folder_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open folder", shown);
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    const int error = errno;
    ::close(fd);
    return ErrnoStatus(error, "list folder", shown);
  }
  std::vector<std::string> names;
  while (true) {
    errno = 0;
    const dirent* entry = ::readdir(dir);
    if (entry == nullptr) break;
    const absl::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  const int error = errno;
  ::closedir(dir);
  if (error != 0) return ErrnoStatus(error, "list folder", shown);
  std::sort(names.begin(), names.end());
  return names;
}

// Removes `name` in `parent_fd` and, for a folder, everything below it.
absl::Status RemoveTreeAt(int parent_fd, const std::string& name,
                          const std::string& shown) {
  struct stat info;
  if (::fstatat(parent_fd, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, "stat", shown);
  }
  if (!S_ISDIR(info.st_mode)) {
    if (::unlinkat(parent_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, "remove", shown);
    }
    return absl::OkStatus();
  }
  {
    ScopedFd folder(::openat(parent_fd, name.c_str(), kDirFlags));
    if (folder.get() < 0) return ErrnoStatus(errno, "open folder", shown);
    LORA_ASSIGN_OR_RETURN(std::vector<std::string> names,
                          ListFolder(folder.get(), shown));
    for (const std::string& child : names) {
      LORA_RETURN_IF_ERROR(
          RemoveTreeAt(folder.get(), child, absl::StrCat(shown, "/", child)));
    }
  }
  if (::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) != 0 &&
      errno != ENOENT) {
    return ErrnoStatus(errno, "remove folder", shown);
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Upload.
// ---------------------------------------------------------------------------

absl::Status Changed(absl::string_view shown, absl::string_view how) {
  return absl::AbortedError(
      absl::StrCat(shown, " changed while it was being uploaded (", how,
                   "); upload a snapshot of a folder that is being written"));
}

// "folder" -> its last component ("" when there is none).
std::string BaseName(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const size_t slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base == "." || base == ".." || base == "/") base.clear();
  return base;
}

// Sends the chunks of one file on `writer`. Local problems come back as an
// error status; `*stream_broken` is set when a Write failed (the coordinator
// ended the call; its status comes from Finish).
absl::Status SendFile(int folder_fd, const std::string& folder,
                      const sweep::ArtifactFileEntry& file,
                      grpc::ClientWriter<v1::UploadArtifactRequest>* writer,
                      const UploadOptions& options, int64_t* bytes_sent,
                      bool* stream_broken) {
  const std::string shown = absl::StrCat(folder, "/", file.path);
  absl::StatusOr<int> opened =
      OpenBeneath(folder_fd, file.path, O_RDONLY, 0, false, folder);
  if (!opened.ok()) {
    if (absl::IsNotFound(opened.status())) return Changed(shown, "removed");
    return opened.status();
  }
  ScopedFd fd(*opened);
  struct stat info;
  if (::fstat(fd.get(), &info) != 0) return ErrnoStatus(errno, "stat", shown);
  if (!S_ISREG(info.st_mode)) return Changed(shown, "no longer a file");

  Sha256 hash;
  v1::UploadArtifactRequest request;
  v1::ArtifactChunk& chunk = *request.mutable_chunk();
  chunk.set_path(file.path);
  int64_t offset = 0;
  // At least one chunk: an empty file is sent as one empty chunk.
  do {
    const int64_t want = std::min(kMaxChunkBytes, file.size_bytes - offset);
    std::string& data = *chunk.mutable_data();
    data.resize(static_cast<size_t>(want));
    LORA_ASSIGN_OR_RETURN(
        const size_t got,
        ReadFully(fd.get(), data.data(), static_cast<size_t>(want), shown));
    if (static_cast<int64_t>(got) < want) {
      return Changed(
          shown, absl::StrCat("now ", offset + got,
                              " bytes, the manifest says ", file.size_bytes));
    }
    hash.Update(data);
    chunk.set_offset(offset);
    if (offset + want == file.size_bytes) {
      // Checked before the last chunk goes out, so that the coordinator
      // never completes a file that differs from the manifest.
      char extra = 0;
      LORA_ASSIGN_OR_RETURN(const size_t more,
                            ReadFully(fd.get(), &extra, 1, shown));
      if (more > 0) {
        return Changed(shown, absl::StrCat("longer than the manifest's ",
                                           file.size_bytes, " bytes"));
      }
      if (hash.FinishHex() != file.sha256) {
        return Changed(shown, "its sha256 differs from the manifest's");
      }
    }
    if (!writer->Write(request)) {
      *stream_broken = true;
      return absl::OkStatus();
    }
    offset += want;
    *bytes_sent += want;
    if (options.on_bytes_sent) options.on_bytes_sent(want);
  } while (offset < file.size_bytes);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Snapshot.
// ---------------------------------------------------------------------------

absl::Status Vanished(absl::string_view shown) {
  return absl::AbortedError(
      absl::StrCat(shown, " disappeared while the folder was being copied"));
}

// Copies the regular file `name` from `from_fd` to `to_fd` byte by byte.
absl::Status CopyFile(int from_fd, int to_fd, const std::string& name,
                      const std::string& shown, const std::string& shown_to) {
  ScopedFd in(
      ::openat(from_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (in.get() < 0) {
    if (errno == ENOENT) return Vanished(shown);
    return ErrnoStatus(errno, "open", shown);
  }
  struct stat info;
  if (::fstat(in.get(), &info) != 0) return ErrnoStatus(errno, "stat", shown);
  ScopedFd out(::openat(to_fd, name.c_str(),
                        O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                        (info.st_mode & 0777) | 0600));
  if (out.get() < 0) return ErrnoStatus(errno, "create", shown_to);
  std::string buffer(static_cast<size_t>(kMaxChunkBytes), '\0');
  while (true) {
    LORA_ASSIGN_OR_RETURN(const size_t got, ReadFully(in.get(), buffer.data(),
                                                      buffer.size(), shown));
    if (got == 0) break;
    LORA_RETURN_IF_ERROR(
        WriteFully(out.get(), absl::string_view(buffer.data(), got), shown_to));
  }
  return absl::OkStatus();
}

// Copies the tree below `from_fd` into the empty folder `to_fd`, leaving
// out the folder `skip` (the snapshot itself, when it is made inside the
// folder it copies).
absl::Status CopyTree(int from_fd, int to_fd, const std::string& shown,
                      const std::string& shown_to, const struct stat& skip) {
  LORA_ASSIGN_OR_RETURN(std::vector<std::string> names,
                        ListFolder(from_fd, shown));
  for (const std::string& name : names) {
    const std::string from = absl::StrCat(shown, "/", name);
    const std::string to = absl::StrCat(shown_to, "/", name);
    struct stat info;
    if (::fstatat(from_fd, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return Vanished(from);
      return ErrnoStatus(errno, "stat", from);
    }
    if (S_ISDIR(info.st_mode)) {
      if (info.st_dev == skip.st_dev && info.st_ino == skip.st_ino) continue;
      if (::mkdirat(to_fd, name.c_str(), 0755) != 0) {
        return ErrnoStatus(errno, "create folder", to);
      }
      ScopedFd sub_from(::openat(from_fd, name.c_str(), kDirFlags));
      if (sub_from.get() < 0) {
        if (errno == ENOENT) return Vanished(from);
        return ErrnoStatus(errno, "open folder", from);
      }
      ScopedFd sub_to(::openat(to_fd, name.c_str(), kDirFlags));
      if (sub_to.get() < 0) return ErrnoStatus(errno, "open folder", to);
      LORA_RETURN_IF_ERROR(
          CopyTree(sub_from.get(), sub_to.get(), from, to, skip));
    } else if (S_ISREG(info.st_mode)) {
      if (::linkat(from_fd, name.c_str(), to_fd, name.c_str(), 0) == 0) {
        continue;
      }
      switch (errno) {
        case ENOENT:
          return Vanished(from);
        // Another file system, a file of another user with
        // protected_hardlinks, too many links, no hard links at all.
        case EXDEV:
        case EPERM:
        case EACCES:
        case EMLINK:
        case EOPNOTSUPP:
        case ENOSYS:
          LORA_RETURN_IF_ERROR(CopyFile(from_fd, to_fd, name, from, to));
          break;
        default:
          return ErrnoStatus(errno, "hard-link", from);
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          QuotedForMessage(from),
          " is not a regular file or folder (symlinks, sockets, fifos and "
          "devices cannot be part of an artifact)"));
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Download.
// ---------------------------------------------------------------------------

// Writes a downloaded artifact into an empty staging folder, checking the
// stream as it arrives (see ArtifactCache::Fetch).
class StagedDownload {
 public:
  StagedDownload(int root_fd, std::string shown_root, std::string artifact_id)
      : root_fd_(root_fd),
        shown_root_(std::move(shown_root)),
        artifact_id_(std::move(artifact_id)) {}

  bool begun() const { return begun_; }

  absl::Status Begin(const v1::Artifact& artifact) {
    manifest_.artifact_id = artifact.artifact_id();
    manifest_.size_bytes = artifact.size_bytes();
    for (const v1::ArtifactFile& file : artifact.files()) {
      manifest_.files.push_back(
          {file.path(), file.size_bytes(), file.sha256()});
    }
    const absl::Status valid = sweep::VerifyManifest(manifest_);
    if (!valid.ok()) {
      return absl::DataLossError(
          absl::StrCat("the coordinator sent a malformed manifest for ",
                       artifact_id_, ": ", valid.message()));
    }
    if (manifest_.artifact_id != artifact_id_) {
      return absl::DataLossError(
          absl::StrCat("the coordinator sent the manifest of ",
                       QuotedForMessage(manifest_.artifact_id),
                       " when asked for ", artifact_id_));
    }
    begun_ = true;
    return absl::OkStatus();
  }

  absl::Status Write(const v1::ArtifactChunk& chunk) {
    const std::vector<sweep::ArtifactFileEntry>& files = manifest_.files;
    size_t index = cursor_;
    while (index < files.size() && files[index].path != chunk.path()) ++index;
    if (index == files.size()) {
      return absl::DataLossError(absl::StrCat(
          "the coordinator sent a chunk of ", QuotedForMessage(chunk.path()),
          ", which is not the next file of ", artifact_id_));
    }
    // Files skipped over must be complete (empty ones need no chunk).
    while (cursor_ < index) LORA_RETURN_IF_ERROR(CompleteFile());
    if (!started_) LORA_RETURN_IF_ERROR(StartFile());
    const sweep::ArtifactFileEntry& file = files[cursor_];
    const std::string& data = chunk.data();
    if (chunk.offset() != written_) {
      return absl::DataLossError(
          absl::StrCat("chunk of ", QuotedForMessage(file.path), " at offset ",
                       chunk.offset(), ", expected offset ", written_));
    }
    if (static_cast<int64_t>(data.size()) > file.size_bytes - written_) {
      return absl::DataLossError(
          absl::StrCat("chunk of ", QuotedForMessage(file.path), " at offset ",
                       chunk.offset(), " with ", data.size(),
                       " bytes goes past its size ", file.size_bytes));
    }
    LORA_RETURN_IF_ERROR(WriteFully(file_.get(), data, Shown(file.path)));
    hash_->Update(data);
    written_ += static_cast<int64_t>(data.size());
    return absl::OkStatus();
  }

  // Checks that every file arrived whole and makes the folder durable.
  absl::Status Finish() {
    if (!begun_) {
      return absl::DataLossError(
          absl::StrCat("the coordinator ended the download of ", artifact_id_,
                       " without a manifest"));
    }
    while (cursor_ < manifest_.files.size()) {
      LORA_RETURN_IF_ERROR(CompleteFile());
    }
    for (const std::string& folder : folders_) {
      LORA_ASSIGN_OR_RETURN(
          const int fd, OpenBeneath(root_fd_, folder, O_RDONLY | O_DIRECTORY, 0,
                                    false, shown_root_));
      ScopedFd owned(fd);
      LORA_RETURN_IF_ERROR(SyncFd(fd, Shown(folder)));
    }
    return SyncFd(root_fd_, shown_root_);
  }

 private:
  std::string Shown(absl::string_view path) const {
    return QuotedForMessage(absl::StrCat(shown_root_, "/", path));
  }

  absl::Status StartFile() {
    const std::string& path = manifest_.files[cursor_].path;
    LORA_ASSIGN_OR_RETURN(
        const int fd, OpenBeneath(root_fd_, path, O_WRONLY | O_CREAT | O_EXCL,
                                  0644, true, shown_root_));
    file_.reset(fd);
    const size_t slash = path.rfind('/');
    if (slash != std::string::npos) folders_.insert(path.substr(0, slash));
    hash_ = std::make_unique<Sha256>();
    written_ = 0;
    started_ = true;
    return absl::OkStatus();
  }

  absl::Status CompleteFile() {
    if (!started_) LORA_RETURN_IF_ERROR(StartFile());
    const sweep::ArtifactFileEntry& file = manifest_.files[cursor_];
    if (written_ != file.size_bytes) {
      return absl::DataLossError(absl::StrCat(
          "the coordinator sent ", written_, " of the ", file.size_bytes,
          " bytes of ", QuotedForMessage(file.path)));
    }
    const std::string sha256 = hash_->FinishHex();
    if (sha256 != file.sha256) {
      return absl::DataLossError(absl::StrCat(
          "the bytes received for ", QuotedForMessage(file.path),
          " have sha256 ", sha256, ", the manifest says ", file.sha256));
    }
    LORA_RETURN_IF_ERROR(SyncFd(file_.get(), Shown(file.path)));
    file_.reset(-1);
    started_ = false;
    ++cursor_;
    return absl::OkStatus();
  }

  const int root_fd_;
  const std::string shown_root_;
  const std::string artifact_id_;
  sweep::ArtifactManifest manifest_;
  bool begun_ = false;
  // The file being received, manifest_.files[cursor_]; started_ once it is
  // created.
  size_t cursor_ = 0;
  bool started_ = false;
  ScopedFd file_;
  int64_t written_ = 0;
  std::unique_ptr<Sha256> hash_;
  // Folders below the root that hold files, synced at the end.
  std::set<std::string> folders_;
};

// True when `path` is a folder, false when nothing is there.
absl::StatusOr<bool> FolderExists(const std::string& path) {
  struct stat info;
  if (::lstat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) return false;
    return ErrnoStatus(errno, "stat", path);
  }
  if (!S_ISDIR(info.st_mode)) {
    return absl::InternalError(
        absl::StrCat(path, " is in the artifact cache but is not a folder"));
  }
  return true;
}

absl::Status SyncFolder(const std::string& path) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus(errno, "open folder", path);
  return SyncFd(fd.get(), path);
}

}  // namespace

absl::StatusOr<UploadedArtifact> UploadFolder(CoordinatorChannel* channel,
                                              const std::string& folder,
                                              int kind, const std::string& name,
                                              const std::string& run_id,
                                              const UploadOptions& options) {
  if (channel == nullptr) {
    return absl::InvalidArgumentError("UploadFolder needs a channel");
  }
  LORA_ASSIGN_OR_RETURN(sweep::ArtifactManifest manifest,
                        sweep::ManifestOfFolder(folder));
  ScopedFd folder_fd(
      ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (folder_fd.get() < 0) return ErrnoStatus(errno, "open folder", folder);

  v1::UploadArtifactRequest request;
  v1::Artifact& artifact = *request.mutable_manifest();
  artifact.set_artifact_id(manifest.artifact_id);
  artifact.set_kind(static_cast<v1::ArtifactKind>(kind));
  artifact.set_name(name.empty() ? BaseName(folder) : name);
  artifact.set_size_bytes(manifest.size_bytes);
  artifact.set_run_id(run_id);
  for (const sweep::ArtifactFileEntry& file : manifest.files) {
    v1::ArtifactFile& out = *artifact.add_files();
    out.set_path(file.path);
    out.set_size_bytes(file.size_bytes);
    out.set_sha256(file.sha256);
  }

  const std::string what =
      absl::StrCat("upload of ", folder, " as ", manifest.artifact_id, ": ");
  std::unique_ptr<grpc::ClientContext> context =
      channel->NewContext(options.timeout);
  v1::UploadArtifactResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::UploadArtifactRequest>> writer =
      channel->stub()->UploadArtifact(context.get(), &response);
  // The coordinator ended the call: its status says why.
  auto coordinator_error = [&]() {
    absl::Status status = FromGrpcStatus(writer->Finish());
    if (status.ok()) {
      status = absl::InternalError("the coordinator ended the stream early");
    }
    return WithPrefix(what, status);
  };

  UploadedArtifact result;
  result.artifact_id = manifest.artifact_id;
  if (!writer->Write(request)) return coordinator_error();
  for (const sweep::ArtifactFileEntry& file : manifest.files) {
    bool stream_broken = false;
    const absl::Status sent =
        SendFile(folder_fd.get(), folder, file, writer.get(), options,
                 &result.bytes_sent, &stream_broken);
    if (!sent.ok()) {
      // Cancelling keeps the coordinator from storing a partial artifact.
      context->TryCancel();
      (void)writer->Finish();
      return sent;
    }
    if (stream_broken) return coordinator_error();
  }
  if (!writer->WritesDone()) return coordinator_error();
  LORA_RETURN_IF_ERROR(WithPrefix(what, FromGrpcStatus(writer->Finish())));
  result.already_existed = response.already_existed();
  return result;
}

absl::StatusOr<std::string> SnapshotFolder(const std::string& folder,
                                           const std::string& snapshot_dir) {
  ScopedFd from(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (from.get() < 0) {
    if (errno == ENOTDIR) {
      return absl::InvalidArgumentError(
          absl::StrCat(folder, " is not a folder"));
    }
    return ErrnoStatus(errno, "open folder", folder);
  }
  std::error_code error;
  std::filesystem::create_directories(snapshot_dir, error);
  if (error) {
    return absl::InternalError(absl::StrCat(
        "cannot create folder ", snapshot_dir, ": ", error.message()));
  }
  std::string base = BaseName(folder);
  if (base.empty()) base = "snapshot";
  std::string path = absl::StrCat(snapshot_dir, "/", base, ".XXXXXX");
  if (::mkdtemp(path.data()) == nullptr) {
    return ErrnoStatus(errno, "create a folder like", path);
  }
  absl::Status status;
  {
    ScopedFd to(::open(path.c_str(), kDirFlags));
    struct stat info;
    if (to.get() < 0) {
      status = ErrnoStatus(errno, "open folder", path);
    } else if (::fstat(to.get(), &info) != 0) {
      status = ErrnoStatus(errno, "stat", path);
    } else {
      status = CopyTree(from.get(), to.get(), folder, path, info);
    }
  }
  if (!status.ok()) {
    (void)RemoveTree(path);
    return status;
  }
  return path;
}

absl::Status RemoveTree(const std::string& path) {
  return RemoveTreeAt(AT_FDCWD, path, path);
}

// ---------------------------------------------------------------------------
// ArtifactCache.
// ---------------------------------------------------------------------------

ArtifactCache::ArtifactCache(const ArtifactCacheOptions& options)
    : dir_(options.dir), options_(options) {}

absl::StatusOr<std::unique_ptr<ArtifactCache>> ArtifactCache::Open(
    const ArtifactCacheOptions& options) {
  if (options.dir.empty()) {
    return absl::InvalidArgumentError("the artifact cache folder is empty");
  }
  for (const char* sub : {kStagingFolder, kLocksFolder}) {
    const std::string path = absl::StrCat(options.dir, "/", sub);
    std::error_code error;
    std::filesystem::create_directories(path, error);
    if (error) {
      return absl::InternalError(
          absl::StrCat("cannot create folder ", path, ": ", error.message()));
    }
  }
  std::unique_ptr<ArtifactCache> cache(new ArtifactCache(options));
  LORA_RETURN_IF_ERROR(cache->RemoveStaleStaging());
  return cache;
}

std::string ArtifactCache::PathOf(const std::string& artifact_id) const {
  if (!sweep::IsArtifactId(artifact_id)) return "";
  const absl::string_view hex =
      absl::string_view(artifact_id).substr(kIdPrefixSize);
  return absl::StrCat(dir_, "/", hex.substr(0, 2), "/", hex);
}

absl::StatusOr<int> ArtifactCache::LockId(const std::string& hex,
                                          bool wait) const {
  const std::string path =
      absl::StrCat(dir_, "/", kLocksFolder, "/", hex, ".lock");
  // Each call opens the file anew: flock locks belong to the open file
  // description, so two threads of one process exclude each other too.
  ScopedFd fd(
      ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (fd.get() < 0) return ErrnoStatus(errno, "open lock file", path);
  while (::flock(fd.get(), LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
    if (errno == EINTR) continue;
    if (!wait && errno == EWOULDBLOCK) return -1;
    return ErrnoStatus(errno, "lock", path);
  }
  return fd.release();
}

absl::Status ArtifactCache::RemoveStaleStaging() {
  const std::string staging = absl::StrCat(dir_, "/", kStagingFolder);
  ScopedFd folder(::open(staging.c_str(), kDirFlags));
  if (folder.get() < 0) return ErrnoStatus(errno, "open folder", staging);
  LORA_ASSIGN_OR_RETURN(std::vector<std::string> names,
                        ListFolder(folder.get(), staging));
  for (const std::string& name : names) {
    // Only this class makes entries here, each named by its id's hex.
    if (!sweep::IsArtifactId(absl::StrCat("sha256:", name))) continue;
    LORA_ASSIGN_OR_RETURN(const int lock, LockId(name, /*wait=*/false));
    if (lock < 0) continue;  // a fetch in progress, maybe in another process
    ScopedFd held(lock);
    LORA_RETURN_IF_ERROR(
        RemoveTreeAt(folder.get(), name, absl::StrCat(staging, "/", name)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ArtifactCache::Fetch(
    CoordinatorChannel* channel, const std::string& artifact_id) {
  LORA_RETURN_IF_ERROR(sweep::ValidateArtifactId(artifact_id));
  const std::string path = PathOf(artifact_id);
  // Entries appear complete, by rename: no lock is needed to use one.
  LORA_ASSIGN_OR_RETURN(bool present, FolderExists(path));
  if (present) return path;
  if (channel == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("Fetch needs a channel to download ", artifact_id));
  }

  const std::string hex = artifact_id.substr(kIdPrefixSize);
  LORA_ASSIGN_OR_RETURN(const int lock, LockId(hex, /*wait=*/true));
  ScopedFd held(lock);
  // Whoever held the lock before may have fetched it.
  LORA_ASSIGN_OR_RETURN(present, FolderExists(path));
  if (present) return path;

  const std::string staging_root = absl::StrCat(dir_, "/", kStagingFolder);
  const std::string staging = absl::StrCat(staging_root, "/", hex);
  // Left by a crashed fetch of the same id.
  LORA_RETURN_IF_ERROR(RemoveTree(staging));
  if (::mkdir(staging.c_str(), 0755) != 0) {
    return ErrnoStatus(errno, "create folder", staging);
  }
  absl::Status status = Download(channel, artifact_id, staging);
  if (status.ok()) {
    const std::string shard = absl::StrCat(dir_, "/", hex.substr(0, 2));
    if (::mkdir(shard.c_str(), 0755) != 0 && errno != EEXIST) {
      status = ErrnoStatus(errno, "create folder", shard);
    } else if (::rename(staging.c_str(), path.c_str()) != 0) {
      status = ErrnoStatus(errno, "rename into place", staging);
    } else {
      downloads_.fetch_add(1);
      LORA_RETURN_IF_ERROR(SyncFolder(shard));
      LORA_RETURN_IF_ERROR(SyncFolder(staging_root));
      return path;
    }
  }
  (void)RemoveTree(staging);
  return status;
}

absl::Status ArtifactCache::Download(CoordinatorChannel* channel,
                                     const std::string& artifact_id,
                                     const std::string& staging) {
  ScopedFd root(::open(staging.c_str(), kDirFlags));
  if (root.get() < 0) return ErrnoStatus(errno, "open folder", staging);
  StagedDownload download(root.get(), staging, artifact_id);

  std::unique_ptr<grpc::ClientContext> context =
      channel->NewContext(options_.download_timeout);
  v1::DownloadArtifactRequest request;
  request.set_artifact_id(artifact_id);
  std::unique_ptr<grpc::ClientReader<v1::DownloadArtifactResponse>> reader =
      channel->stub()->DownloadArtifact(context.get(), request);
  v1::DownloadArtifactResponse response;
  absl::Status local;
  while (local.ok() && reader->Read(&response)) {
    if (!download.begun()) {
      local = response.has_manifest()
                  ? download.Begin(response.manifest())
                  : absl::DataLossError(
                        absl::StrCat("the download of ", artifact_id,
                                     " did not start with its manifest"));
    } else if (response.has_chunk()) {
      const auto bytes = static_cast<int64_t>(response.chunk().data().size());
      bytes_downloaded_.fetch_add(bytes);
      if (options_.on_bytes_downloaded) options_.on_bytes_downloaded(bytes);
      local = download.Write(response.chunk());
    } else {
      local = absl::DataLossError(
          absl::StrCat("the download of ", artifact_id,
                       " sent a second manifest or an empty message"));
    }
  }
  if (!local.ok()) {
    context->TryCancel();
    (void)reader->Finish();
    return local;
  }
  LORA_RETURN_IF_ERROR(
      WithPrefix(absl::StrCat("download of ", artifact_id, ": "),
                 FromGrpcStatus(reader->Finish())));
  return download.Finish();
}

}  // namespace lora::worker
