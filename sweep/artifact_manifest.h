// Content-addressed artifacts: the manifest of a folder and its id.
//
// An artifact is an immutable folder of files named by its content (see
// lora.v1.Artifact in proto/lora/v1/common.proto). Its manifest lists every
// file, sorted by path in byte order, and its id is
//
//   "sha256:" + lowercase hex sha256 of the manifest's canonical text,
//
// where the canonical text has one line per file,
// "<sha256> <size_bytes> <path>\n". The same folder content therefore has the
// same id wherever it is hashed, and any change of a byte, a name, or the set
// of files changes it. Empty folders are not part of the content.
//
// loractl builds manifests of local folders before uploading them; the
// coordinator and workers check manifests they receive (VerifyManifest) and
// every path before writing a file under an artifact's root
// (ValidateArtifactPath), so that no name can escape that root.
//
// All functions are thread-compatible and keep no state.
#ifndef LORA_SWEEP_SWEEP_ARTIFACT_MANIFEST_H_
#define LORA_SWEEP_SWEEP_ARTIFACT_MANIFEST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lora::sweep {

// One file of an artifact (lora.v1.ArtifactFile).
struct ArtifactFileEntry {
  // Relative to the artifact's root, '/'-separated (ValidateArtifactPath).
  std::string path;
  int64_t size_bytes = 0;
  // sha256 of the file's bytes, 64 lowercase hex digits.
  std::string sha256;
};

// What identifies an artifact's content.
struct ArtifactManifest {
  std::vector<ArtifactFileEntry> files;  // sorted by path, byte order
  int64_t size_bytes = 0;                // sum of the files' sizes
  std::string artifact_id;               // ArtifactIdOf(files)
};

// The canonical manifest text of `files`: "<sha256> <size_bytes> <path>\n"
// per file, sorted by path in byte order (a sorted copy is used; `files` may
// come in any order). Does not validate the entries; see VerifyManifest.
std::string ManifestText(const std::vector<ArtifactFileEntry>& files);

// "sha256:" + Sha256Hex(ManifestText(files)).
std::string ArtifactIdOf(const std::vector<ArtifactFileEntry>& files);

// The manifest of every regular file under `folder` (recursively), each
// hashed by streaming it from disk. `folder` is used as given (no "~"
// expansion) and may itself be reached through a symlink; nothing inside it
// is followed.
//
// Errors, each naming the offending path:
// - NotFound: `folder` does not exist.
// - InvalidArgument: `folder` is not a folder; it holds no files (nothing to
//   upload); it holds a symlink, a socket, a fifo or a device; a file or
//   folder name that is not a valid artifact path (ValidateArtifactPath,
//   e.g. a name with a newline or a backslash, or not UTF-8).
// - Aborted: a file changed size while it was being hashed.
// - Internal / PermissionDenied: a folder or file that cannot be read.
absl::StatusOr<ArtifactManifest> ManifestOfFolder(const std::string& folder);

// OK when `path` is safe to create under an artifact's root: non-empty, at
// most 4096 bytes, relative ('/' not first), '/'-separated components none of
// which is empty, "." or "..", no backslash, no control characters (bytes
// below 0x20, NUL included, and 0x7f), and valid UTF-8 (the path travels in
// a protobuf string). InvalidArgument naming the path (escaped) otherwise.
absl::Status ValidateArtifactPath(absl::string_view path);

// True for "sha256:" followed by 64 lowercase hex digits.
bool IsArtifactId(absl::string_view value);

// OK when IsArtifactId(id); InvalidArgument naming the value otherwise.
absl::Status ValidateArtifactId(absl::string_view id);

// OK when `manifest` is well formed: at least one file; every path valid;
// files sorted by path with no path given twice and none a folder of
// another ("a" and "a/b"); sizes >= 0; every sha256
// 64 lowercase hex digits; `size_bytes` the sum of the files' sizes; and
// `artifact_id` equal to ArtifactIdOf(files). InvalidArgument naming the
// first problem otherwise. It checks the manifest only, not file contents.
absl::Status VerifyManifest(const ArtifactManifest& manifest);

}  // namespace lora::sweep

#endif  // LORA_SWEEP_SWEEP_ARTIFACT_MANIFEST_H_
