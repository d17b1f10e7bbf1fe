#include "loractl/artifact_transfer.h"

#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "sweep/artifact_manifest.h"

namespace lora::loractl {
namespace {

namespace fs = std::filesystem;

std::string BaseName(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const size_t slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base == "." || base == ".." || base == "/") base.clear();
  return base;
}

absl::Status Changed(const std::string& shown, const std::string& how) {
  return absl::AbortedError(absl::StrCat(
      shown, " changed while it was being uploaded (", how, "); try again"));
}

// Sends one file's chunks; `*broken` when lorad ended the stream (its
// status then comes from Finish).
absl::Status SendFile(const std::string& folder,
                      const sweep::ArtifactFileEntry& file,
                      grpc::ClientWriter<v1::UploadArtifactRequest>* writer,
                      bool* broken) {
  const std::string shown = absl::StrCat(folder, "/", file.path);
  std::ifstream in(shown, std::ios::binary);
  if (!in) return Changed(shown, "cannot be opened");
  Sha256 hash;
  v1::UploadArtifactRequest request;
  v1::ArtifactChunk& chunk = *request.mutable_chunk();
  chunk.set_path(file.path);
  int64_t offset = 0;
  do {
    const int64_t want = std::min(kChunkBytes, file.size_bytes - offset);
    std::string& data = *chunk.mutable_data();
    data.resize(static_cast<size_t>(want));
    in.read(data.data(), want);
    if (in.gcount() != want) {
      return Changed(
          shown, absl::StrCat("now shorter than ", file.size_bytes, " bytes"));
    }
    hash.Update(data);
    chunk.set_offset(offset);
    if (offset + want == file.size_bytes) {
      // Checked before the last chunk leaves, so lorad never completes a
      // file that differs from the manifest.
      if (in.peek() != std::char_traits<char>::eof()) {
        return Changed(shown, "longer than when it was hashed");
      }
      if (hash.FinishHex() != file.sha256) {
        return Changed(shown, "its sha256 differs from when it was hashed");
      }
    }
    if (!writer->Write(request)) {
      *broken = true;
      return absl::OkStatus();
    }
    offset += want;
  } while (offset < file.size_bytes);
  return absl::OkStatus();
}

// Receives a download into `root` (an empty staging folder).
class StagedDownload {
 public:
  StagedDownload(std::string root, std::string artifact_id)
      : root_(std::move(root)), artifact_id_(std::move(artifact_id)) {}

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
          absl::StrCat("lorad sent a malformed manifest for ", artifact_id_,
                       ": ", valid.message()));
    }
    if (manifest_.artifact_id != artifact_id_) {
      return absl::DataLossError(
          absl::StrCat("lorad sent the manifest of ", manifest_.artifact_id,
                       " when asked for ", artifact_id_));
    }
    begun_ = true;
    return absl::OkStatus();
  }

  absl::Status Write(const v1::ArtifactChunk& chunk) {
    const auto& files = manifest_.files;
    size_t index = cursor_;
    while (index < files.size() && files[index].path != chunk.path()) ++index;
    if (index == files.size()) {
      return absl::DataLossError(
          absl::StrCat("lorad sent a chunk of \"", chunk.path(),
                       "\", which is not the next file of ", artifact_id_));
    }
    while (cursor_ < index) LORA_RETURN_IF_ERROR(CompleteFile());
    if (!started_) LORA_RETURN_IF_ERROR(StartFile());
    const sweep::ArtifactFileEntry& file = files[cursor_];
    const std::string& data = chunk.data();
    if (chunk.offset() != written_) {
      return absl::DataLossError(absl::StrCat("chunk of \"", file.path,
                                              "\" at offset ", chunk.offset(),
                                              ", expected offset ", written_));
    }
    if (static_cast<int64_t>(data.size()) > file.size_bytes - written_) {
      return absl::DataLossError(absl::StrCat(
          "chunk of \"", file.path, "\" goes past its size ", file.size_bytes));
    }
    out_.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!out_) {
      return absl::InternalError(
          absl::StrCat("cannot write ", root_, "/", file.path));
    }
    hash_->Update(data);
    written_ += static_cast<int64_t>(data.size());
    return absl::OkStatus();
  }

  absl::Status Finish() {
    if (!begun_) {
      return absl::DataLossError(absl::StrCat(
          "lorad ended the download of ", artifact_id_, " without a manifest"));
    }
    while (cursor_ < manifest_.files.size()) {
      LORA_RETURN_IF_ERROR(CompleteFile());
    }
    return absl::OkStatus();
  }

 private:
  absl::Status StartFile() {
    const std::string path =
        absl::StrCat(root_, "/", manifest_.files[cursor_].path);
    std::error_code error;
    fs::create_directories(fs::path(path).parent_path(), error);
    if (error) {
      return absl::InternalError(absl::StrCat("cannot create the folder of ",
                                              path, ": ", error.message()));
    }
    out_ = std::ofstream(path, std::ios::binary | std::ios::trunc);
    if (!out_) return absl::InternalError(absl::StrCat("cannot create ", path));
    hash_ = std::make_unique<Sha256>();
    written_ = 0;
    started_ = true;
    return absl::OkStatus();
  }

  absl::Status CompleteFile() {
    if (!started_) LORA_RETURN_IF_ERROR(StartFile());
    const sweep::ArtifactFileEntry& file = manifest_.files[cursor_];
    if (written_ != file.size_bytes) {
      return absl::DataLossError(absl::StrCat("lorad sent ", written_,
                                              " of the ", file.size_bytes,
                                              " bytes of \"", file.path, "\""));
    }
    const std::string sha256 = hash_->FinishHex();
    if (sha256 != file.sha256) {
      return absl::DataLossError(absl::StrCat(
          "the bytes received for \"", file.path, "\" have sha256 ", sha256,
          ", the manifest says ", file.sha256));
    }
    out_.close();
    if (!out_) {
      return absl::InternalError(
          absl::StrCat("cannot write ", root_, "/", file.path));
    }
    started_ = false;
    ++cursor_;
    return absl::OkStatus();
  }

  const std::string root_;
  const std::string artifact_id_;
  sweep::ArtifactManifest manifest_;
  bool begun_ = false;
  size_t cursor_ = 0;
  bool started_ = false;
  std::ofstream out_;
  int64_t written_ = 0;
  std::unique_ptr<Sha256> hash_;
};

}  // namespace

absl::StatusOr<UploadedFolder> UploadFolderIfMissing(LoradClient* client,
                                                     const std::string& folder,
                                                     v1::ArtifactKind kind,
                                                     const std::string& name) {
  LORA_ASSIGN_OR_RETURN(sweep::ArtifactManifest manifest,
                        sweep::ManifestOfFolder(folder));
  UploadedFolder result;
  result.artifact_id = manifest.artifact_id;
  result.files = static_cast<int64_t>(manifest.files.size());
  result.size_bytes = manifest.size_bytes;
  absl::StatusOr<v1::Artifact> existing =
      client->GetArtifact(manifest.artifact_id);
  if (existing.ok()) {
    result.already_on_server = true;
    return result;
  }
  if (!absl::IsNotFound(existing.status())) return existing.status();

  v1::UploadArtifactRequest request;
  v1::Artifact& artifact = *request.mutable_manifest();
  artifact.set_artifact_id(manifest.artifact_id);
  artifact.set_kind(kind);
  artifact.set_name(name.empty() ? BaseName(folder) : name);
  artifact.set_size_bytes(manifest.size_bytes);
  for (const sweep::ArtifactFileEntry& file : manifest.files) {
    v1::ArtifactFile& out = *artifact.add_files();
    out.set_path(file.path);
    out.set_size_bytes(file.size_bytes);
    out.set_sha256(file.sha256);
  }
  // No deadline: a large checkpoint may take long; lorad's keepalives end a
  // dead connection.
  std::unique_ptr<grpc::ClientContext> context = client->NewContext();
  v1::UploadArtifactResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::UploadArtifactRequest>> writer =
      client->stub()->UploadArtifact(context.get(), &response);
  const std::string method = absl::StrCat("UploadArtifact of ", folder);
  auto lorad_error = [&]() -> absl::Status {
    grpc::Status status = writer->Finish();
    if (status.ok()) {
      return absl::InternalError(
          absl::StrCat(method, ": lorad ended the stream early"));
    }
    return client->Explain(method, status);
  };
  if (!writer->Write(request)) return lorad_error();
  for (const sweep::ArtifactFileEntry& file : manifest.files) {
    bool broken = false;
    absl::Status sent = SendFile(folder, file, writer.get(), &broken);
    if (!sent.ok()) {
      context->TryCancel();
      (void)writer->Finish();
      return sent;
    }
    if (broken) return lorad_error();
  }
  if (!writer->WritesDone()) return lorad_error();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return client->Explain(method, status);
  result.already_on_server = response.already_existed();
  return result;
}

absl::StatusOr<v1::Artifact> DownloadArtifactTo(LoradClient* client,
                                                const std::string& artifact_id,
                                                const std::string& dest) {
  LORA_RETURN_IF_ERROR(sweep::ValidateArtifactId(artifact_id));
  std::error_code error;
  const fs::path target = fs::path(dest).lexically_normal();
  const bool exists = fs::exists(fs::symlink_status(target, error));
  if (exists) {
    if (!fs::is_directory(target, error)) {
      return absl::InvalidArgumentError(
          absl::StrCat(dest, " exists and is not a folder"));
    }
    if (!fs::is_empty(target, error)) {
      return absl::InvalidArgumentError(
          absl::StrCat(dest, " is not empty; name a new or empty folder"));
    }
  }
  fs::path parent = target.parent_path();
  if (parent.empty()) parent = ".";
  fs::create_directories(parent, error);
  if (error) {
    return absl::InternalError(absl::StrCat(
        "cannot create folder ", parent.string(), ": ", error.message()));
  }
  std::string staging_template =
      (parent / (target.filename().string() + ".partial-XXXXXX")).string();
  if (::mkdtemp(staging_template.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("cannot create a folder like ",
                                            staging_template, ": ",
                                            std::strerror(errno)));
  }
  const std::string staging = staging_template;
  auto fail = [&](absl::Status status) {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
    return status;
  };

  StagedDownload download(staging, artifact_id);
  std::unique_ptr<grpc::ClientContext> context = client->NewContext();
  v1::DownloadArtifactRequest request;
  request.set_artifact_id(artifact_id);
  std::unique_ptr<grpc::ClientReader<v1::DownloadArtifactResponse>> reader =
      client->stub()->DownloadArtifact(context.get(), request);
  v1::DownloadArtifactResponse response;
  v1::Artifact manifest;
  absl::Status local;
  while (local.ok() && reader->Read(&response)) {
    if (!download.begun()) {
      if (response.has_manifest()) {
        manifest = response.manifest();
        local = download.Begin(response.manifest());
      } else {
        local = absl::DataLossError(
            absl::StrCat("the download of ", artifact_id,
                         " did not start with its manifest"));
      }
    } else if (response.has_chunk()) {
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
    return fail(local);
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return fail(client->Explain("DownloadArtifact", status));
  absl::Status finished = download.Finish();
  if (!finished.ok()) return fail(finished);
  if (exists) {
    fs::remove(target, error);
    if (error) {
      return fail(absl::InternalError(absl::StrCat(
          "cannot replace the empty folder ", dest, ": ", error.message())));
    }
  }
  fs::rename(staging, target, error);
  if (error) {
    return fail(absl::InternalError(absl::StrCat(
        "cannot rename ", staging, " to ", dest, ": ", error.message())));
  }
  return manifest;
}

}  // namespace lora::loractl
