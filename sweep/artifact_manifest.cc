#include "sweep/artifact_manifest.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "base/status_text.h"
#include "lora_core/utf8.h"

namespace lora::sweep {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxPathBytes = 4096;

bool IsSha256Hex(absl::string_view hex) {
  if (hex.size() != 64) return false;
  return std::all_of(hex.begin(), hex.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

absl::Status FileSystemError(const std::string& what, const fs::path& path,
                             const std::error_code& error) {
  std::string message =
      absl::StrCat("cannot ", what, " ", path.string(), ": ", error.message());
  if (error == std::errc::permission_denied) {
    return absl::PermissionDeniedError(message);
  }
  if (error == std::errc::no_such_file_or_directory) {
    return absl::NotFoundError(message);
  }
  return absl::InternalError(message);
}

std::string KindOf(fs::file_type type) {
  switch (type) {
    case fs::file_type::symlink:
      return "a symlink";
    case fs::file_type::fifo:
      return "a fifo";
    case fs::file_type::socket:
      return "a socket";
    case fs::file_type::block:
      return "a block device";
    case fs::file_type::character:
      return "a character device";
    default:
      return "not a regular file";
  }
}

// Hashes one regular file. The size is read before and after hashing: a
// file that grows or shrinks meanwhile would give a manifest that does not
// describe the bytes that are later uploaded.
absl::StatusOr<ArtifactFileEntry> HashFile(const fs::path& absolute,
                                           std::string relative) {
  std::error_code error;
  const uintmax_t before = fs::file_size(absolute, error);
  if (error) return FileSystemError("read the size of", absolute, error);
  LORA_ASSIGN_OR_RETURN(std::string sha256, Sha256FileHex(absolute.string()));
  const uintmax_t after = fs::file_size(absolute, error);
  if (error) return FileSystemError("read the size of", absolute, error);
  if (before != after) {
    return absl::AbortedError(absl::StrCat(absolute.string(),
                                           ": changed size while it was being "
                                           "hashed (",
                                           before, " -> ", after,
                                           " bytes); try again when it is "
                                           "complete"));
  }
  if (after > static_cast<uintmax_t>(std::numeric_limits<int64_t>::max())) {
    return absl::InvalidArgumentError(
        absl::StrCat(absolute.string(), ": too large (", after, " bytes)"));
  }
  ArtifactFileEntry entry;
  entry.path = std::move(relative);
  entry.size_bytes = static_cast<int64_t>(after);
  entry.sha256 = std::move(sha256);
  return entry;
}

}  // namespace

std::string ManifestText(const std::vector<ArtifactFileEntry>& files) {
  std::vector<const ArtifactFileEntry*> sorted;
  sorted.reserve(files.size());
  for (const ArtifactFileEntry& file : files) sorted.push_back(&file);
  // std::string compares through char_traits<char>, which orders bytes as
  // unsigned char: byte order, as the id's definition requires.
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const ArtifactFileEntry* a, const ArtifactFileEntry* b) {
                     return a->path < b->path;
                   });
  std::string text;
  for (const ArtifactFileEntry* file : sorted) {
    absl::StrAppend(&text, file->sha256, " ", file->size_bytes, " ", file->path,
                    "\n");
  }
  return text;
}

std::string ArtifactIdOf(const std::vector<ArtifactFileEntry>& files) {
  return "sha256:" + Sha256Hex(ManifestText(files));
}

absl::StatusOr<ArtifactManifest> ManifestOfFolder(const std::string& folder) {
  std::error_code error;
  const fs::path root(folder);
  const fs::file_status root_status = fs::status(root, error);
  if (error && error != std::errc::no_such_file_or_directory) {
    return FileSystemError("read", root, error);
  }
  if (!fs::exists(root_status)) {
    return absl::NotFoundError(
        absl::StrCat(QuotedForMessage(folder), " does not exist"));
  }
  if (!fs::is_directory(root_status)) {
    return absl::InvalidArgumentError(
        absl::StrCat(QuotedForMessage(folder), " is not a folder"));
  }

  ArtifactManifest manifest;
  // Folders still to list: (absolute, relative to the root).
  std::vector<std::pair<fs::path, std::string>> pending = {{root, ""}};
  while (!pending.empty()) {
    auto [directory, prefix] = std::move(pending.back());
    pending.pop_back();
    fs::directory_iterator it(directory, error);
    if (error) return FileSystemError("list", directory, error);
    for (; it != fs::directory_iterator(); it.increment(error)) {
      const fs::path& absolute = it->path();
      const std::string name = absolute.filename().string();
      std::string relative = prefix.empty() ? name : prefix + "/" + name;
      // Validated before anything else so that a hostile name is reported
      // escaped, and so that the depth of the walk stays bounded.
      const absl::Status valid = ValidateArtifactPath(relative);
      if (!valid.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(folder,
                         ": cannot upload a file whose name is not a valid "
                         "artifact path: ",
                         valid.message()));
      }
      // symlink_status: a symlink is reported as one, never followed.
      const fs::file_status status = it->symlink_status(error);
      if (error) return FileSystemError("read", absolute, error);
      if (fs::is_directory(status)) {
        pending.emplace_back(absolute, std::move(relative));
      } else if (fs::is_regular_file(status)) {
        LORA_ASSIGN_OR_RETURN(ArtifactFileEntry entry,
                              HashFile(absolute, std::move(relative)));
        if (entry.size_bytes >
            std::numeric_limits<int64_t>::max() - manifest.size_bytes) {
          return absl::InvalidArgumentError(
              absl::StrCat(QuotedForMessage(folder), ": too large"));
        }
        manifest.size_bytes += entry.size_bytes;
        manifest.files.push_back(std::move(entry));
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            absolute.string(), ": is ", KindOf(status.type()),
            "; an artifact holds only regular files and folders (copy the "
            "file itself in its place)"));
      }
    }
    if (error) return FileSystemError("list", directory, error);
  }
  if (manifest.files.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(QuotedForMessage(folder),
                     " holds no files; there is nothing to upload"));
  }
  std::sort(manifest.files.begin(), manifest.files.end(),
            [](const ArtifactFileEntry& a, const ArtifactFileEntry& b) {
              return a.path < b.path;
            });
  manifest.artifact_id = ArtifactIdOf(manifest.files);
  return manifest;
}

absl::Status ValidateArtifactPath(absl::string_view path) {
  auto invalid = [&](absl::string_view problem) {
    return absl::InvalidArgumentError(
        absl::StrCat("artifact path ", QuotedForMessage(path), ": ", problem));
  };
  if (path.empty()) return invalid("is empty");
  if (path.size() > kMaxPathBytes) {
    return invalid(absl::StrCat("is longer than ", kMaxPathBytes, " bytes"));
  }
  if (path.front() == '/') return invalid("must be relative (starts with '/')");
  for (const char c : path) {
    const unsigned char byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      return invalid("holds a control character");
    }
    if (c == '\\') return invalid("holds a backslash; separate with '/'");
  }
  if (core::FirstInvalidUtf8(path) != absl::string_view::npos) {
    return invalid("is not valid UTF-8");
  }
  for (absl::string_view component : absl::StrSplit(path, '/')) {
    if (component.empty()) return invalid("has an empty component");
    if (component == "." || component == "..") {
      return invalid(absl::StrCat("has a \"", component, "\" component"));
    }
  }
  return absl::OkStatus();
}

bool IsArtifactId(absl::string_view value) {
  constexpr absl::string_view kPrefix = "sha256:";
  if (value.size() != kPrefix.size() + 64 ||
      !absl::StartsWith(value, kPrefix)) {
    return false;
  }
  for (char c : value.substr(kPrefix.size())) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::Status ValidateArtifactId(absl::string_view id) {
  if (IsArtifactId(id)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("artifact id ", QuotedForMessage(id),
                   ": expected \"sha256:\" followed by 64 lowercase hex "
                   "digits"));
}

absl::Status VerifyManifest(const ArtifactManifest& manifest) {
  if (manifest.files.empty()) {
    return absl::InvalidArgumentError("manifest lists no files");
  }
  std::set<absl::string_view> paths;
  int64_t total = 0;
  for (size_t i = 0; i < manifest.files.size(); ++i) {
    const ArtifactFileEntry& file = manifest.files[i];
    const std::string where = absl::StrCat("manifest file ", i, " (",
                                           QuotedForMessage(file.path), "): ");
    const absl::Status valid = ValidateArtifactPath(file.path);
    if (!valid.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("manifest file ", i, ": ", valid.message()));
    }
    if (i > 0 && !(manifest.files[i - 1].path < file.path)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where,
          manifest.files[i - 1].path == file.path
              ? "listed twice"
              : absl::StrCat("not sorted: comes after ",
                             QuotedForMessage(manifest.files[i - 1].path))));
    }
    if (file.size_bytes < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "negative size ", file.size_bytes));
    }
    if (file.size_bytes > std::numeric_limits<int64_t>::max() - total) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "sizes add up past the int64 range"));
    }
    total += file.size_bytes;
    if (!IsSha256Hex(file.sha256)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "sha256 ", QuotedForMessage(file.sha256),
                       " is not 64 lowercase hex digits"));
    }
    paths.insert(file.path);
  }
  // A path that is also another's folder ("a" and "a/b") cannot be written.
  for (const ArtifactFileEntry& file : manifest.files) {
    const absl::string_view path = file.path;
    for (size_t slash = path.find('/'); slash != absl::string_view::npos;
         slash = path.find('/', slash + 1)) {
      if (paths.count(path.substr(0, slash)) > 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "manifest file ", QuotedForMessage(path), ": its folder ",
            QuotedForMessage(path.substr(0, slash)),
            " is also listed as a file"));
      }
    }
  }
  if (manifest.size_bytes != total) {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest size_bytes is ", manifest.size_bytes,
                     " but its files add up to ", total));
  }
  LORA_RETURN_IF_ERROR(ValidateArtifactId(manifest.artifact_id));
  const std::string expected = ArtifactIdOf(manifest.files);
  if (manifest.artifact_id != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest artifact_id ", manifest.artifact_id,
                     " does not match its files, whose id is ", expected));
  }
  return absl::OkStatus();
}

}  // namespace lora::sweep
