// Moving artifacts between this machine and lorad over SweepService:
// uploading a local folder (a dataset or a base checkpoint named by a sweep
// file) unless lorad already holds its content, and downloading an
// artifact (a run's adapter) into a local folder, every file checked
// against the manifest's sha256 and size.
//
// Artifacts are content-addressed folders (sweep/artifact_manifest.h): the
// manifest first, then every file's bytes in manifest order, in chunks of
// at most 1 MiB. Errors from lorad keep their code (LoradClient::Explain).
// Thread-compatible: one call per thread on a shared client.
#ifndef LORA_SWEEP_LORACTL_ARTIFACT_TRANSFER_H_
#define LORA_SWEEP_LORACTL_ARTIFACT_TRANSFER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "lora/v1/common.pb.h"
#include "loractl/client.h"

namespace lora::loractl {

// Largest chunk sent.
inline constexpr int64_t kChunkBytes = int64_t{1} << 20;

struct UploadedFolder {
  std::string artifact_id;
  // True when lorad already held the content (GetArtifact found it) and
  // nothing was sent.
  bool already_on_server = false;
  int64_t files = 0;
  int64_t size_bytes = 0;
};

// Hashes `folder` (sweep::ManifestOfFolder), asks lorad whether it holds
// that artifact (GetArtifact), and uploads it on one UploadArtifact stream
// when it does not. `kind` is a lora.v1.ArtifactKind; `name` the artifact's
// display name ("" = the folder's base name).
//
// Errors: ManifestOfFolder's (NotFound, InvalidArgument for an empty folder
// or one holding a symlink, ...); Aborted when a file changes while it is
// sent (the stream is cancelled, so lorad stores nothing); lorad's status.
absl::StatusOr<UploadedFolder> UploadFolderIfMissing(LoradClient* client,
                                                     const std::string& folder,
                                                     v1::ArtifactKind kind,
                                                     const std::string& name);

// Downloads artifact `artifact_id` into `dest`, which must not exist or be
// an empty folder. Files are written into a fresh staging folder beside
// `dest` and checked as they arrive: the manifest must be well formed
// (sweep::VerifyManifest, so no path escapes the folder) and carry
// `artifact_id`; chunks come in manifest order without gaps; every file
// ends with its manifest size and sha256. Only then is the staging folder
// renamed to `dest`; on any error it is removed and `dest` is left as it
// was. Returns the manifest.
//
// Errors: InvalidArgument for an id that is not "sha256:<64 hex>" or a
// `dest` that is a file or a non-empty folder; lorad's status (NotFound
// for an artifact it does not hold); DataLoss when what arrives breaks the
// rules above (naming the file); Internal for local I/O errors.
absl::StatusOr<v1::Artifact> DownloadArtifactTo(LoradClient* client,
                                                const std::string& artifact_id,
                                                const std::string& dest);

}  // namespace lora::loractl

#endif  // LORA_SWEEP_LORACTL_ARTIFACT_TRANSFER_H_
