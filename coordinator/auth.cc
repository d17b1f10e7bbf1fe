#include "coordinator/auth.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/sha256.h"

namespace lora::coordinator {
namespace {

constexpr size_t kMinTokenLength = 16;
// A tokens file is a few lines; a larger one is not a tokens file.
constexpr off_t kMaxTokensFileBytes = 1 << 20;
constexpr char kLineFormat[] = "expected \"<role> <token> [<name>]\"";
constexpr char kHeaderFormat[] = "expected \"Bearer <token>\"";

bool ParseRole(absl::string_view value, Role* role) {
  if (value == "client") {
    *role = Role::kClient;
  } else if (value == "worker") {
    *role = Role::kWorker;
  } else if (value == "admin") {
    *role = Role::kAdmin;
  } else {
    return false;
  }
  return true;
}

bool IsVisibleAscii(absl::string_view value) {
  for (const char c : value) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

bool HasControlCharacter(absl::string_view value) {
  for (const char c : value) {
    const unsigned char byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) return true;
  }
  return false;
}

// Equal-length hex digests compared without an early exit, so that the
// time taken says nothing about where they differ.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    difference |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return difference == 0;
}

absl::string_view BaseName(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kClient:
      return "client";
    case Role::kWorker:
      return "worker";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

absl::StatusOr<TokenTable> TokenTable::Parse(absl::string_view text,
                                             absl::string_view source) {
  TokenTable table;
  std::map<std::string, int> line_of_token;  // by sha256
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r\f\v"), absl::SkipEmpty());
    for (size_t i = 0; i < fields.size(); ++i) {
      if (absl::StartsWith(fields[i], "#")) {
        fields.resize(i);
        break;
      }
    }
    if (fields.empty()) continue;
    auto invalid = [&](absl::string_view problem) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":", line_number, ": ", problem));
    };
    Role role;
    if (!ParseRole(fields[0], &role)) {
      // A long first field may be a token written before its role: a
      // secret, so it is described rather than quoted.
      constexpr size_t kMaxQuotedRole = 12;
      return invalid(
          absl::StrCat("unknown role ",
                       fields[0].size() <= kMaxQuotedRole
                           ? absl::StrCat("\"", absl::CEscape(fields[0]), "\"")
                           : absl::StrCat("(a value of ", fields[0].size(),
                                          " characters; is the token first?)"),
                       "; expected client, worker or admin"));
    }
    if (fields.size() < 2)
      return invalid(absl::StrCat("missing token; ", kLineFormat));
    if (fields.size() > 3) {
      return invalid(absl::StrCat(fields.size(), " fields; ", kLineFormat,
                                  " (a name cannot hold spaces)"));
    }
    const absl::string_view token = fields[1];
    if (token.size() < kMinTokenLength) {
      return invalid(absl::StrCat("the token is ", token.size(),
                                  " characters long; at least ",
                                  kMinTokenLength, " are required"));
    }
    if (!IsVisibleAscii(token)) {
      return invalid(
          "the token holds a character other than visible ASCII (it is sent "
          "in an HTTP header)");
    }
    std::string name;
    if (fields.size() == 3) {
      if (HasControlCharacter(fields[2])) {
        return invalid("the name holds a control character");
      }
      name = std::string(fields[2]);
    } else {
      name = absl::StrCat(BaseName(source), ":", line_number);
    }
    std::string digest = Sha256Hex(token);
    const auto [it, inserted] = line_of_token.emplace(digest, line_number);
    if (!inserted) {
      return invalid(absl::StrCat("duplicate token: line ", it->second,
                                  " holds the same token"));
    }
    table.entries_.push_back({std::move(digest), {std::move(name), role}});
  }
  if (table.entries_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source,
        ": holds no tokens; a tokens file turns authentication on and needs "
        "at least one line ",
        kLineFormat, " (run without a tokens file to turn it off)"));
  }
  return table;
}

absl::StatusOr<Principal> TokenTable::Authenticate(
    absl::string_view authorization_header) const {
  const absl::string_view header =
      absl::StripAsciiWhitespace(authorization_header);
  if (header.empty()) {
    return absl::UnauthenticatedError(
        absl::StrCat("missing authorization metadata; ", kHeaderFormat));
  }
  const size_t space = header.find_first_of(" \t");
  if (space == absl::string_view::npos) {
    // One word: a token without its scheme, or a scheme without a token.
    // Either way not quoted.
    return absl::UnauthenticatedError(
        absl::StrCat("malformed authorization metadata; ", kHeaderFormat));
  }
  if (!absl::EqualsIgnoreCase(header.substr(0, space), "bearer")) {
    return absl::UnauthenticatedError(
        absl::StrCat("authorization metadata uses a scheme other than Bearer; ",
                     kHeaderFormat));
  }
  const absl::string_view token =
      absl::StripAsciiWhitespace(header.substr(space + 1));
  if (token.empty()) {
    return absl::UnauthenticatedError(
        absl::StrCat("empty bearer token; ", kHeaderFormat));
  }
  // Compared by digest, against every entry: neither how much of a token
  // matched nor which entry did shows in the time taken.
  const std::string digest = Sha256Hex(token);
  const Entry* match = nullptr;
  for (const Entry& entry : entries_) {
    if (ConstantTimeEquals(digest, entry.token_sha256)) match = &entry;
  }
  if (match == nullptr) {
    return absl::UnauthenticatedError(
        entries_.empty() ? "no tokens are configured" : "unknown bearer token");
  }
  return match->principal;
}

absl::StatusOr<TokenTable> LoadTokens(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int error = errno;
    std::string message = absl::StrCat("cannot open tokens file ", path, ": ",
                                       std::strerror(error));
    if (error == ENOENT) return absl::NotFoundError(message);
    if (error == EACCES) return absl::PermissionDeniedError(message);
    return absl::InternalError(message);
  }
  // The checks are made on the open file, so the file read is the file
  // checked.
  struct stat info;
  std::string text;
  absl::Status status;
  if (::fstat(fd, &info) != 0) {
    status = absl::InternalError(absl::StrCat("cannot stat tokens file ", path,
                                              ": ", std::strerror(errno)));
  } else if (!S_ISREG(info.st_mode)) {
    status = absl::InvalidArgumentError(
        absl::StrCat("tokens file ", path, " is not a regular file"));
  } else if ((info.st_mode & 077) != 0) {
    status = absl::FailedPreconditionError(absl::StrFormat(
        "tokens file %s has mode %04o: it holds secrets, so group and others "
        "must have no access to it (chmod 600 %s)",
        path, info.st_mode & 07777, path));
  } else if (info.st_size > kMaxTokensFileBytes) {
    status = absl::InvalidArgumentError(absl::StrCat(
        "tokens file ", path, " holds ", info.st_size,
        " bytes; a tokens file holds at most ", kMaxTokensFileBytes));
  } else {
    char buffer[1 << 14];
    while (true) {
      const ssize_t n = ::read(fd, buffer, sizeof(buffer));
      if (n < 0) {
        if (errno == EINTR) continue;
        status = absl::InternalError(absl::StrCat(
            "cannot read tokens file ", path, ": ", std::strerror(errno)));
        break;
      }
      if (n == 0) break;
      text.append(buffer, static_cast<size_t>(n));
      if (text.size() > static_cast<size_t>(kMaxTokensFileBytes)) {
        status = absl::InvalidArgumentError(
            absl::StrCat("tokens file ", path, " is larger than ",
                         kMaxTokensFileBytes, " bytes"));
        break;
      }
    }
  }
  ::close(fd);
  if (!status.ok()) return status;
  return TokenTable::Parse(text, path);
}

absl::Status Authorize(const Principal& principal, Role required) {
  if (principal.role == Role::kAdmin || principal.role == required) {
    return absl::OkStatus();
  }
  absl::string_view what;
  std::string needs;
  switch (required) {
    case Role::kClient:
      what = "call SweepService";
      needs = "a client or admin token";
      break;
    case Role::kWorker:
      what = "call WorkerService";
      needs = "a worker or admin token";
      break;
    case Role::kAdmin:
      what = "make admin calls";
      needs = "an admin token";
      break;
  }
  return absl::PermissionDeniedError(
      absl::StrCat(RoleName(principal.role), " token '", principal.name,
                   "' may not ", what, " (it needs ", needs, ")"));
}

}  // namespace lora::coordinator
