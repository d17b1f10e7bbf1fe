// Bearer-token authentication with roles, free of gRPC: the service layer
// hands over the value of the `authorization` metadata and maps the status.
//
// Tokens file (`lorad --tokens=FILE`), one token per line:
//
//   # role   token                               name (optional)
//   client   3b6f0c1e9a0d4c8f8d2e7a61b5c4d3e2    alice
//   worker   9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b    pool-a
//   admin    0f1e2d3c4b5a69788796a5b4c3d2e1f0
//
// Blank lines are ignored, and so is everything from a field that starts
// with '#' to the end of its line. A token is at least 16 characters of
// visible ASCII (it travels in an HTTP/2 header) and unique in the file.
// A token without a name is named after its place, "<file>:<line>". The
// file holds secrets: like ssh, LoadTokens refuses one that group or others
// may read, write or execute.
//
// Roles: client tokens may call SweepService, worker tokens WorkerService,
// admin tokens both.
//
// Auth is off when the coordinator has no tokens file: the caller then
// holds an empty TokenTable (default-constructed; enabled() is false) and
// skips Authenticate and Authorize. An empty table authenticates nobody,
// so a caller that forgets the check fails closed.
#ifndef LORA_SWEEP_COORDINATOR_AUTH_H_
#define LORA_SWEEP_COORDINATOR_AUTH_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lora::coordinator {

enum class Role { kClient, kWorker, kAdmin };

// "client", "worker", "admin".
absl::string_view RoleName(Role role);

// Who made a call.
struct Principal {
  std::string name;
  Role role = Role::kClient;
};

// The tokens of a tokens file. Immutable once built; its const methods may
// be called from many threads at once. Keeps only the tokens' sha256.
class TokenTable {
 public:
  // An empty table: auth is off.
  TokenTable() = default;

  // Parses a tokens file's text; `source` names it in messages
  // ("<source>:<line>: ..."). InvalidArgument for an unknown role, a
  // missing token, a token shorter than 16 characters or with characters
  // other than visible ASCII, a name with control characters, more than
  // three fields, a token given twice, or no token at all (a file that
  // turns auth on must hold one). Messages never quote a token.
  static absl::StatusOr<TokenTable> Parse(absl::string_view text,
                                          absl::string_view source);

  // True when the table holds tokens, i.e. auth is on.
  bool enabled() const { return !entries_.empty(); }
  size_t size() const { return entries_.size(); }

  // The principal whose token `authorization_header` carries. The header
  // must be "Bearer <token>" (the scheme in any case, spaces around the
  // token ignored). Unauthenticated for an empty header, another scheme, or
  // a token the table does not hold (always, for an empty table); the
  // message never quotes the header or the token. Tokens are compared in
  // time that does not depend on how much of one matched.
  absl::StatusOr<Principal> Authenticate(
      absl::string_view authorization_header) const;

 private:
  struct Entry {
    std::string token_sha256;  // hex
    Principal principal;
  };
  std::vector<Entry> entries_;
};

// Reads and parses a tokens file (TokenTable::Parse, messages naming the
// file and line). FailedPrecondition naming the file and its mode when
// group or others have any permission on it (mode & 077 != 0); NotFound
// when it does not exist; InvalidArgument when it is not a regular file.
absl::StatusOr<TokenTable> LoadTokens(const std::string& path);

// OK when `principal` may make a call that needs `required`: its role is
// `required` or admin. PermissionDenied naming the principal and what its
// role may not do otherwise, e.g. "worker token 'pool-a' may not call
// SweepService (it needs a client or admin token)".
absl::Status Authorize(const Principal& principal, Role required);

}  // namespace lora::coordinator

#endif  // LORA_SWEEP_COORDINATOR_AUTH_H_
