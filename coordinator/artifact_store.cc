#include "coordinator/artifact_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "base/status_text.h"

namespace lora::coordinator {
namespace {

constexpr char kStagingFolder[] = ".staging";
constexpr char kLockFile[] = ".lock";
constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

void CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Owns a file descriptor in a scope that may return early.
class ScopedFd {
 public:
  explicit ScopedFd(int fd = -1) : fd_(fd) {}
  ~ScopedFd() { CloseFd(fd_); }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd) {
    CloseFd(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// Opens the folder `relative` ('/'-separated, "" for `parent_fd` itself)
// below `parent_fd`, one component at a time and following no symlink, so
// that nothing below can lead out of it. With `create`, missing folders are
// made (mode 0755) and each new entry is synced into its parent. `shown` is
// the parent's path for messages. NotFound when a component is missing,
// FailedPrecondition when one is a symlink or not a folder.
absl::StatusOr<int> OpenDirBeneath(int parent_fd, absl::string_view relative,
                                   bool create, absl::string_view shown) {
  ScopedFd current(::dup(parent_fd));
  if (current.get() < 0) return ErrnoStatus(errno, "open", shown);
  size_t start = 0;
  while (start < relative.size()) {
    size_t slash = relative.find('/', start);
    if (slash == absl::string_view::npos) slash = relative.size();
    const std::string component(relative.substr(start, slash - start));
    const std::string shown_here =
        absl::StrCat(shown, "/", relative.substr(0, slash));
    if (create) {
      if (::mkdirat(current.get(), component.c_str(), 0755) == 0) {
        if (::fsync(current.get()) != 0) {
          return ErrnoStatus(errno, "sync the folder above", shown_here);
        }
      } else if (errno != EEXIST) {
        return ErrnoStatus(errno, "create folder", shown_here);
      }
    }
    const int next = ::openat(current.get(), component.c_str(), kDirFlags);
    if (next < 0) {
      if (errno == ELOOP || errno == ENOTDIR) {
        return absl::FailedPreconditionError(
            absl::StrCat(shown_here, " is a symlink or not a folder"));
      }
      return ErrnoStatus(errno, "open folder", shown_here);
    }
    current.reset(next);
    start = slash + 1;
  }
  return current.release();
}

// Splits "a/b/c" into "a/b" and "c" ("" and "c" for "c").
std::pair<absl::string_view, absl::string_view> SplitParent(
    absl::string_view path) {
  const size_t slash = path.rfind('/');
  if (slash == absl::string_view::npos) return {"", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

absl::Status WriteAll(int fd, absl::string_view data, absl::string_view shown) {
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

// Reads exactly `size` bytes; false at an early end of file.
absl::StatusOr<bool> ReadExactly(int fd, char* buffer, size_t size,
                                 absl::string_view shown) {
  while (size > 0) {
    const ssize_t n = ::read(fd, buffer, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read", shown);
    }
    if (n == 0) return false;
    buffer += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Removes `name` under `parent_fd` and everything below it, following no
// symlink. Sub-folders are moved up beside `name` before they are emptied,
// so however deep the tree, this recurses nowhere and holds at most two
// descriptors. Best effort: what cannot be removed stays.
void RemoveTreeAt(int parent_fd, const std::string& name) {
  std::vector<std::string> pending = {name};
  int64_t moved = 0;
  while (!pending.empty()) {
    const std::string current = std::move(pending.back());
    pending.pop_back();
    struct stat info;
    if (::fstatat(parent_fd, current.c_str(), &info, AT_SYMLINK_NOFOLLOW) !=
        0) {
      continue;
    }
    if (!S_ISDIR(info.st_mode)) {
      ::unlinkat(parent_fd, current.c_str(), 0);
      continue;
    }
    const int fd = ::openat(parent_fd, current.c_str(), kDirFlags);
    if (fd < 0) continue;
    DIR* dir = ::fdopendir(fd);
    if (dir == nullptr) {
      ::close(fd);
      continue;
    }
    std::vector<std::string> children;
    while (const dirent* entry = ::readdir(dir)) {
      const absl::string_view child = entry->d_name;
      if (child != "." && child != "..") children.emplace_back(child);
    }
    for (const std::string& child : children) {
      if (::fstatat(::dirfd(dir), child.c_str(), &info, AT_SYMLINK_NOFOLLOW) !=
          0) {
        continue;
      }
      if (!S_ISDIR(info.st_mode)) {
        ::unlinkat(::dirfd(dir), child.c_str(), 0);
        continue;
      }
      // A few tries: a leftover of an earlier, interrupted removal may hold
      // the name.
      for (int attempt = 0; attempt < 8; ++attempt) {
        std::string up = absl::StrCat(name, "~", moved++);
        if (::renameat(::dirfd(dir), child.c_str(), parent_fd, up.c_str()) ==
            0) {
          pending.push_back(std::move(up));
          break;
        }
        if (errno != EEXIST && errno != ENOTEMPTY) break;
      }
    }
    ::closedir(dir);
    ::unlinkat(parent_fd, current.c_str(), AT_REMOVEDIR);
  }
}

// Every entry in the folder, removed.
void RemoveChildren(int dir_fd) {
  const int fd = ::dup(dir_fd);
  if (fd < 0) return;
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    return;
  }
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(dir)) {
    const absl::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  ::closedir(dir);
  for (const std::string& name : names) RemoveTreeAt(dir_fd, name);
}

// "sha256:<hex>" -> "<first 2 hex>/<hex>"; the id must be valid.
std::string FolderOfId(absl::string_view artifact_id) {
  const absl::string_view hex = artifact_id.substr(sizeof("sha256:") - 1);
  return absl::StrCat(hex.substr(0, 2), "/", hex);
}

ArtifactRecord RecordOf(const sweep::ArtifactManifest& manifest, int64_t kind,
                        const std::string& name, const std::string& run_id,
                        int64_t now_ms) {
  ArtifactRecord record;
  record.artifact_id = manifest.artifact_id;
  record.kind = kind;
  record.name = name;
  record.files.reserve(manifest.files.size());
  for (const sweep::ArtifactFileEntry& file : manifest.files) {
    record.files.push_back({file.path, file.size_bytes, file.sha256});
  }
  record.size_bytes = manifest.size_bytes;
  record.run_id = run_id;
  record.create_ms = now_ms;
  return record;
}

}  // namespace

// ---------------------------------------------------------------------------
// UploadSession

UploadSession::UploadSession(ArtifactStore* store,
                             sweep::ArtifactManifest manifest, int64_t kind,
                             std::string name, std::string run_id,
                             bool verify_only)
    : store_(store),
      manifest_(std::move(manifest)),
      kind_(kind),
      name_(std::move(name)),
      run_id_(std::move(run_id)),
      verify_only_(verify_only) {}

UploadSession::~UploadSession() { Abort(); }

void UploadSession::Abort() {
  if (state_ == State::kOpen) {
    state_ = State::kEnded;
    Cleanup();
  }
}

void UploadSession::Cleanup() {
  CloseFd(file_fd_);
  CloseFd(dir_fd_);
  CloseFd(staging_fd_);
  hash_.reset();
  if (!staging_name_.empty()) {
    RemoveTreeAt(store_->staging_fd_, staging_name_);
    staging_name_.clear();
  }
}

absl::Status UploadSession::Fail(absl::Status status) {
  state_ = State::kEnded;
  Cleanup();
  return status;
}

std::string UploadSession::Shown(absl::string_view relative) const {
  return absl::StrCat(store_->root_, "/", kStagingFolder, "/", staging_name_,
                      relative.empty() ? "" : "/", relative);
}

absl::Status UploadSession::StartFile() {
  const sweep::ArtifactFileEntry& file = manifest_.files[cursor_];
  hash_ = std::make_unique<Sha256>();
  written_ = 0;
  started_ = true;
  if (verify_only_) return absl::OkStatus();
  const auto [folder, base] = SplitParent(file.path);
  if (dir_fd_ < 0 || folder != dir_path_) {
    // Leaving a folder: sync the entries made in it. Files come sorted, so
    // a folder is rarely entered twice.
    if (dir_fd_ >= 0 && ::fsync(dir_fd_) != 0) {
      return ErrnoStatus(errno, "sync folder", Shown(dir_path_));
    }
    CloseFd(dir_fd_);
    LORA_ASSIGN_OR_RETURN(dir_fd_, OpenDirBeneath(staging_fd_, folder,
                                                  /*create=*/true, Shown("")));
    dir_path_ = std::string(folder);
  }
  const std::string base_name(base);
  file_fd_ =
      ::openat(dir_fd_, base_name.c_str(),
               O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (file_fd_ < 0) return ErrnoStatus(errno, "create", Shown(file.path));
  return absl::OkStatus();
}

absl::Status UploadSession::CompleteFile() {
  if (!started_) LORA_RETURN_IF_ERROR(StartFile());
  const sweep::ArtifactFileEntry& file = manifest_.files[cursor_];
  if (written_ != file.size_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("file ", QuotedForMessage(file.path), ": received ",
                     written_, " of its ", file.size_bytes,
                     " bytes (every file is sent whole, in manifest order)"));
  }
  const std::string digest = hash_->FinishHex();
  hash_.reset();
  if (digest != file.sha256) {
    return absl::InvalidArgumentError(absl::StrCat(
        "file ", QuotedForMessage(file.path), ": the sha256 of its ", written_,
        " bytes is ", digest, " but the manifest says ", file.sha256));
  }
  if (file_fd_ >= 0) {
    if (::fsync(file_fd_) != 0) {
      return ErrnoStatus(errno, "sync", Shown(file.path));
    }
    CloseFd(file_fd_);
  }
  ++cursor_;
  started_ = false;
  written_ = 0;
  return absl::OkStatus();
}

absl::Status UploadSession::Write(absl::string_view path, int64_t offset,
                                  absl::string_view data) {
  if (state_ != State::kOpen) {
    return absl::FailedPreconditionError(
        absl::StrCat("the upload of ", manifest_.artifact_id, " has ended"));
  }
  const std::string where = absl::StrCat("chunk for ", QuotedForMessage(path),
                                         " at offset ", offset, ": ");
  auto invalid = [&](absl::string_view problem) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(where, problem)));
  };
  if (static_cast<int64_t>(data.size()) > ArtifactStore::kMaxChunkBytes) {
    return invalid(absl::StrCat("holds ", data.size(), " bytes; at most ",
                                ArtifactStore::kMaxChunkBytes,
                                " are allowed per chunk"));
  }
  if (offset < 0) return invalid("negative offset");

  const std::vector<sweep::ArtifactFileEntry>& files = manifest_.files;
  size_t target = cursor_;
  if (cursor_ >= files.size() || files[cursor_].path != path) {
    const auto it = std::lower_bound(
        files.begin(), files.end(), path,
        [](const sweep::ArtifactFileEntry& file, absl::string_view value) {
          return absl::string_view(file.path) < value;
        });
    if (it == files.end() || it->path != path) {
      const absl::Status valid = sweep::ValidateArtifactPath(path);
      return invalid(valid.ok() ? "not a file of the manifest"
                                : valid.message());
    }
    target = static_cast<size_t>(it - files.begin());
    if (target < cursor_) {
      return invalid(
          cursor_ < files.size()
              ? absl::StrCat("that file is complete; files are sent in "
                             "manifest order and the next one is ",
                             QuotedForMessage(files[cursor_].path))
              : "that file is complete; every file has been received");
    }
    // Moving on: every file in between must be complete (or empty).
    while (cursor_ < target) {
      const absl::Status complete = CompleteFile();
      if (!complete.ok()) return Fail(WithPrefix(where, complete));
    }
  }
  const sweep::ArtifactFileEntry& file = files[target];
  if (!started_) {
    const absl::Status start = StartFile();
    if (!start.ok()) return Fail(start);
  }
  if (offset != written_) {
    return invalid(absl::StrCat("expected offset ", written_,
                                "; a file's chunks come in order, without "
                                "gaps or overlaps"));
  }
  if (static_cast<int64_t>(data.size()) > file.size_bytes - written_) {
    return invalid(absl::StrCat("runs past the file's size in the manifest, ",
                                file.size_bytes, " bytes"));
  }
  if (!verify_only_) {
    const absl::Status wrote = WriteAll(file_fd_, data, Shown(file.path));
    if (!wrote.ok()) return Fail(wrote);
  }
  hash_->Update(data);
  written_ += static_cast<int64_t>(data.size());
  if (written_ == file.size_bytes) {
    // Checked as soon as it is whole, so that a wrong file fails the upload
    // before the next file's bytes are stored.
    const absl::Status complete = CompleteFile();
    if (!complete.ok()) return Fail(WithPrefix(where, complete));
  }
  return absl::OkStatus();
}

absl::Status UploadSession::Publish() {
  if (dir_fd_ >= 0 && ::fsync(dir_fd_) != 0) {
    return ErrnoStatus(errno, "sync folder", Shown(dir_path_));
  }
  CloseFd(dir_fd_);
  if (::fsync(staging_fd_) != 0) {
    return ErrnoStatus(errno, "sync folder", Shown(""));
  }
  CloseFd(staging_fd_);

  const std::string folder = FolderOfId(manifest_.artifact_id);
  const auto [prefix, hex] = SplitParent(folder);
  const std::string prefix_name(prefix);
  const std::string hex_name(hex);
  const std::string shown_prefix = absl::StrCat(store_->root_, "/", prefix);
  const std::string shown_folder = absl::StrCat(store_->root_, "/", folder);
  bool new_prefix = false;
  if (::mkdirat(store_->root_fd_, prefix_name.c_str(), 0755) == 0) {
    new_prefix = true;
  } else if (errno != EEXIST) {
    return ErrnoStatus(errno, "create folder", shown_prefix);
  }
  LORA_ASSIGN_OR_RETURN(const int prefix_fd,
                        OpenDirBeneath(store_->root_fd_, prefix,
                                       /*create=*/false, store_->root_));
  ScopedFd prefix_dir(prefix_fd);
  if (::renameat(store_->staging_fd_, staging_name_.c_str(), prefix_dir.get(),
                 hex_name.c_str()) == 0) {
    staging_name_.clear();  // nothing left to remove
    if (::fsync(prefix_dir.get()) != 0) {
      return ErrnoStatus(errno, "sync folder", shown_prefix);
    }
    if (::fsync(store_->staging_fd_) != 0) {
      return ErrnoStatus(errno, "sync folder", Shown(""));
    }
    if (new_prefix && ::fsync(store_->root_fd_) != 0) {
      return ErrnoStatus(errno, "sync folder", store_->root_);
    }
    return absl::OkStatus();
  }
  const int error = errno;
  if (error == EEXIST || error == ENOTEMPTY) {
    // Another upload of the same content was published first: its folder
    // holds the same verified bytes. Ours is removed by Cleanup.
    LORA_ASSIGN_OR_RETURN(
        const int existing,
        OpenDirBeneath(prefix_dir.get(), hex, /*create=*/false, shown_prefix));
    ::close(existing);
    return absl::OkStatus();
  }
  return ErrnoStatus(error, "move the uploaded folder into place at",
                     shown_folder);
}

absl::StatusOr<UploadResult> UploadSession::Finish(int64_t now_ms) {
  if (state_ != State::kOpen) {
    return absl::FailedPreconditionError(
        absl::StrCat("the upload of ", manifest_.artifact_id, " has ended"));
  }
  while (cursor_ < manifest_.files.size()) {
    const absl::Status complete = CompleteFile();
    if (!complete.ok()) return Fail(complete);
  }
  if (!verify_only_) {
    const absl::Status published = Publish();
    if (!published.ok()) return Fail(published);
  }
  state_ = State::kEnded;
  Cleanup();

  RunStore* records = store_->records_;
  UploadResult result;
  if (!verify_only_) {
    result.artifact = RecordOf(manifest_, kind_, name_, run_id_, now_ms);
    // One of several concurrent uploads stores the record; the others see
    // it there, so exactly one reports a new artifact.
    LORA_ASSIGN_OR_RETURN(const bool stored,
                          records->PutArtifact(result.artifact));
    if (stored) return result;
  }
  LORA_ASSIGN_OR_RETURN(result.artifact,
                        records->GetArtifact(manifest_.artifact_id));
  result.already_existed = true;
  return result;
}

// ---------------------------------------------------------------------------
// ArtifactReader

ArtifactReader::ArtifactReader(ArtifactRecord artifact, int folder_fd,
                               bool verify, std::string shown_folder)
    : artifact_(std::move(artifact)),
      folder_fd_(folder_fd),
      verify_(verify),
      shown_folder_(std::move(shown_folder)) {}

ArtifactReader::~ArtifactReader() {
  CloseFd(file_fd_);
  CloseFd(folder_fd_);
}

absl::Status ArtifactReader::Fail(absl::Status status) {
  done_ = true;
  CloseFd(file_fd_);
  hash_.reset();
  return status;
}

absl::StatusOr<bool> ArtifactReader::Next(FileChunk* chunk) {
  if (done_ || index_ >= artifact_.files.size()) {
    done_ = true;
    return false;
  }
  const ArtifactFileRecord& file = artifact_.files[index_];
  const std::string shown = absl::StrCat(shown_folder_, "/", file.path);
  if (file_fd_ < 0) {
    const auto [folder, base] = SplitParent(file.path);
    // A missing file or folder, or a symlink in place of one, means the
    // folder is no longer the recorded artifact: DataLoss.
    absl::StatusOr<int> dir_fd =
        OpenDirBeneath(folder_fd_, folder, /*create=*/false, shown_folder_);
    if (!dir_fd.ok()) {
      const absl::Status& status = dir_fd.status();
      return Fail(absl::IsNotFound(status) || absl::IsFailedPrecondition(status)
                      ? absl::DataLossError(status.message())
                      : status);
    }
    ScopedFd dir(*dir_fd);
    const std::string base_name(base);
    file_fd_ = ::openat(dir.get(), base_name.c_str(),
                        O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (file_fd_ < 0) {
      const int error = errno;
      const absl::Status status = ErrnoStatus(error, "open", shown);
      return Fail(error == ENOENT || error == ELOOP
                      ? absl::DataLossError(status.message())
                      : status);
    }
    struct stat info;
    if (::fstat(file_fd_, &info) != 0) {
      return Fail(ErrnoStatus(errno, "read the size of", shown));
    }
    if (!S_ISREG(info.st_mode) || info.st_size != file.size_bytes) {
      return Fail(absl::DataLossError(
          absl::StrCat(shown, ": holds ", info.st_size, " bytes but artifact ",
                       artifact_.artifact_id, " records ", file.size_bytes)));
    }
    offset_ = 0;
    if (verify_) hash_ = std::make_unique<Sha256>();
  }
  const int64_t size =
      std::min(file.size_bytes - offset_, ArtifactStore::kMaxChunkBytes);
  chunk->path = file.path;
  chunk->offset = offset_;
  chunk->data.resize(static_cast<size_t>(size));
  absl::StatusOr<bool> whole =
      ReadExactly(file_fd_, chunk->data.data(), chunk->data.size(), shown);
  if (!whole.ok()) return Fail(whole.status());
  if (!*whole) {
    return Fail(absl::DataLossError(
        absl::StrCat(shown, ": shorter than the ", file.size_bytes,
                     " bytes artifact ", artifact_.artifact_id, " records")));
  }
  if (hash_ != nullptr) hash_->Update(chunk->data);
  offset_ += size;
  if (offset_ == file.size_bytes) {
    // Checked before the file's last chunk is handed out, so that a reader
    // never completes a file that is not the recorded one.
    if (hash_ != nullptr) {
      const std::string digest = hash_->FinishHex();
      hash_.reset();
      if (digest != file.sha256) {
        return Fail(absl::DataLossError(
            absl::StrCat(shown, ": its sha256 is ", digest, " but artifact ",
                         artifact_.artifact_id, " records ", file.sha256)));
      }
    }
    CloseFd(file_fd_);
    ++index_;
  }
  return true;
}

// ---------------------------------------------------------------------------
// ArtifactStore

ArtifactStore::ArtifactStore(std::string root, RunStore* records,
                             const ArtifactStoreOptions& options, int root_fd,
                             int lock_fd, int staging_fd)
    : root_(std::move(root)),
      records_(records),
      options_(options),
      root_fd_(root_fd),
      lock_fd_(lock_fd),
      staging_fd_(staging_fd) {}

ArtifactStore::~ArtifactStore() {
  ::close(staging_fd_);
  ::close(lock_fd_);  // releases the flock
  ::close(root_fd_);
}

absl::StatusOr<std::unique_ptr<ArtifactStore>> ArtifactStore::Open(
    const std::string& root, RunStore* records,
    const ArtifactStoreOptions& options) {
  if (root.empty()) {
    return absl::InvalidArgumentError("artifact store: empty root folder");
  }
  if (records == nullptr) {
    return absl::InvalidArgumentError("artifact store: no run store given");
  }
  if (options.max_artifact_bytes < 1 || options.max_files < 1 ||
      options.max_read_file_bytes < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "artifact store: limits must be >= 1, got max_artifact_bytes ",
        options.max_artifact_bytes, ", max_files ", options.max_files,
        ", max_read_file_bytes ", options.max_read_file_bytes));
  }
  std::error_code error;
  std::filesystem::create_directories(root, error);
  if (error) {
    return absl::InternalError(absl::StrCat("cannot create artifact root ",
                                            root, ": ", error.message()));
  }
  // The root itself may be a symlink (an operator's choice); nothing below
  // it is followed.
  ScopedFd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root_fd.get() < 0) {
    return ErrnoStatus(errno, "open artifact root", root);
  }
  const std::string shown_lock = absl::StrCat(root, "/", kLockFile);
  ScopedFd lock_fd(::openat(root_fd.get(), kLockFile,
                            O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (lock_fd.get() < 0) return ErrnoStatus(errno, "open", shown_lock);
  if (::flock(lock_fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat("artifact root ", root,
                       " is in use by another artifact store (is another "
                       "lorad running with it?)"));
    }
    return ErrnoStatus(errno, "lock", shown_lock);
  }
  const std::string shown_staging = absl::StrCat(root, "/", kStagingFolder);
  if (::mkdirat(root_fd.get(), kStagingFolder, 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, "create folder", shown_staging);
  }
  ScopedFd staging_fd(::openat(root_fd.get(), kStagingFolder, kDirFlags));
  if (staging_fd.get() < 0) {
    return ErrnoStatus(errno, "open folder", shown_staging);
  }
  // Uploads a crash interrupted; the lock says no live store owns them.
  RemoveChildren(staging_fd.get());
  return std::unique_ptr<ArtifactStore>(
      new ArtifactStore(root, records, options, root_fd.release(),
                        lock_fd.release(), staging_fd.release()));
}

absl::Status ArtifactStore::CreateStaging(std::string* name, int* fd) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string candidate =
        absl::StrCat(::getpid(), ".", next_staging_.fetch_add(1), ".",
                     absl::ToUnixNanos(absl::Now()));
    // 0755: the folder becomes the published one. .staging itself is 0700.
    if (::mkdirat(staging_fd_, candidate.c_str(), 0755) != 0) {
      if (errno == EEXIST) continue;
      return ErrnoStatus(
          errno, "create folder",
          absl::StrCat(root_, "/", kStagingFolder, "/", candidate));
    }
    *fd = ::openat(staging_fd_, candidate.c_str(), kDirFlags);
    if (*fd < 0) {
      const absl::Status status =
          ErrnoStatus(errno, "open folder",
                      absl::StrCat(root_, "/", kStagingFolder, "/", candidate));
      RemoveTreeAt(staging_fd_, candidate);
      return status;
    }
    *name = std::move(candidate);
    return absl::OkStatus();
  }
  return absl::InternalError(absl::StrCat(
      "cannot create a unique staging folder in ", root_, "/", kStagingFolder));
}

absl::StatusOr<int> ArtifactStore::OpenFolder(const std::string& artifact_id) {
  absl::StatusOr<int> fd = OpenDirBeneath(root_fd_, FolderOfId(artifact_id),
                                          /*create=*/false, root_);
  if (absl::IsNotFound(fd.status())) return -1;
  return fd;
}

absl::StatusOr<bool> ArtifactStore::Exists(const std::string& artifact_id) {
  LORA_RETURN_IF_ERROR(sweep::ValidateArtifactId(artifact_id));
  absl::StatusOr<ArtifactRecord> record = records_->GetArtifact(artifact_id);
  if (absl::IsNotFound(record.status())) return false;
  if (!record.ok()) return record.status();
  LORA_ASSIGN_OR_RETURN(const int fd, OpenFolder(artifact_id));
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

absl::StatusOr<std::unique_ptr<UploadSession>> ArtifactStore::BeginUpload(
    const sweep::ArtifactManifest& manifest, int64_t kind,
    const std::string& name, const std::string& run_id) {
  // Counted before VerifyManifest, whose work grows with the count.
  if (static_cast<int64_t>(manifest.files.size()) > options_.max_files) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "artifact ", manifest.artifact_id, " lists ", manifest.files.size(),
        " files; this coordinator accepts at most ", options_.max_files));
  }
  LORA_RETURN_IF_ERROR(sweep::VerifyManifest(manifest));
  if (manifest.size_bytes > options_.max_artifact_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "artifact ", manifest.artifact_id, " holds ", manifest.size_bytes,
        " bytes; this coordinator accepts at most ",
        options_.max_artifact_bytes));
  }
  LORA_ASSIGN_OR_RETURN(const bool exists, Exists(manifest.artifact_id));
  std::unique_ptr<UploadSession> session(
      new UploadSession(this, manifest, kind, name, run_id, exists));
  if (!exists) {
    LORA_RETURN_IF_ERROR(
        CreateStaging(&session->staging_name_, &session->staging_fd_));
  }
  return session;
}

absl::StatusOr<ArtifactRecord> ArtifactStore::Get(
    const std::string& artifact_id) {
  LORA_RETURN_IF_ERROR(sweep::ValidateArtifactId(artifact_id));
  LORA_ASSIGN_OR_RETURN(ArtifactRecord record,
                        records_->GetArtifact(artifact_id));
  LORA_ASSIGN_OR_RETURN(const int fd, OpenFolder(artifact_id));
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat(
        "artifact ", artifact_id, " is recorded but its folder ", root_, "/",
        FolderOfId(artifact_id), " is missing; upload it again"));
  }
  ::close(fd);
  return record;
}

absl::StatusOr<std::unique_ptr<ArtifactReader>> ArtifactStore::OpenReader(
    const std::string& artifact_id) {
  LORA_ASSIGN_OR_RETURN(ArtifactRecord record, Get(artifact_id));
  LORA_ASSIGN_OR_RETURN(const int fd, OpenFolder(artifact_id));
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrCat("artifact ", artifact_id, ": its folder is missing"));
  }
  return std::unique_ptr<ArtifactReader>(
      new ArtifactReader(std::move(record), fd, options_.verify_reads,
                         absl::StrCat(root_, "/", FolderOfId(artifact_id))));
}

absl::Status ArtifactStore::ForEachChunk(const std::string& artifact_id,
                                         const ChunkSink& sink) {
  LORA_ASSIGN_OR_RETURN(std::unique_ptr<ArtifactReader> reader,
                        OpenReader(artifact_id));
  FileChunk chunk;
  while (true) {
    LORA_ASSIGN_OR_RETURN(const bool more, reader->Next(&chunk));
    if (!more) return absl::OkStatus();
    if (!sink(chunk.path, chunk.offset, chunk.data)) return absl::OkStatus();
  }
}

absl::StatusOr<std::string> ArtifactStore::ReadFile(
    const std::string& artifact_id, const std::string& path) {
  LORA_RETURN_IF_ERROR(sweep::ValidateArtifactId(artifact_id));
  LORA_RETURN_IF_ERROR(sweep::ValidateArtifactPath(path));
  LORA_ASSIGN_OR_RETURN(ArtifactRecord record, Get(artifact_id));
  const auto it = std::find_if(
      record.files.begin(), record.files.end(),
      [&](const ArtifactFileRecord& file) { return file.path == path; });
  if (it == record.files.end()) {
    return absl::NotFoundError(absl::StrCat(
        "artifact ", artifact_id, " holds no file ", QuotedForMessage(path)));
  }
  if (it->size_bytes > options_.max_read_file_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "artifact ", artifact_id, ": file ", QuotedForMessage(path), " holds ",
        it->size_bytes, " bytes; at most ", options_.max_read_file_bytes,
        " are read whole"));
  }
  LORA_ASSIGN_OR_RETURN(const int fd, OpenFolder(artifact_id));
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrCat("artifact ", artifact_id, ": its folder is missing"));
  }
  // A reader of this one file, always verified: it is small.
  ArtifactRecord one = record;
  one.files = {*it};
  ArtifactReader reader(std::move(one), fd, /*verify=*/true,
                        absl::StrCat(root_, "/", FolderOfId(artifact_id)));
  std::string contents;
  contents.reserve(static_cast<size_t>(it->size_bytes));
  FileChunk chunk;
  while (true) {
    LORA_ASSIGN_OR_RETURN(const bool more, reader.Next(&chunk));
    if (!more) return contents;
    contents += chunk.data;
  }
}

}  // namespace lora::coordinator
