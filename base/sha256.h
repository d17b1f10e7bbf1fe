// SHA-256 (OpenSSL's libcrypto), as lowercase hex. Content addresses of
// artifacts, dataset caches and sweep ids use it.
#ifndef LORA_SWEEP_BASE_SHA256_H_
#define LORA_SWEEP_BASE_SHA256_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lora {

// Hex digest of `bytes`.
std::string Sha256Hex(absl::string_view bytes);

// Hex digest of a file's bytes, read in chunks. NotFound / Internal with the
// path on I/O errors.
absl::StatusOr<std::string> Sha256FileHex(const std::string& path);

// Incremental hashing. Not thread-safe.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view bytes);
  // The hex digest; the object must not be updated afterwards.
  std::string FinishHex();

 private:
  void* context_;  // EVP_MD_CTX*
};

}  // namespace lora

#endif  // LORA_SWEEP_BASE_SHA256_H_
