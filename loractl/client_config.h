// Where loractl finds lorad and its token, with the precedence users know
// from kubectl and gh:
//
//   server: --server, then $LORACTL_SERVER, then `server:` in the config
//           file, then 127.0.0.1:7070;
//   token:  $LORACTL_TOKEN, then `token:` in the config file, else none
//           (no authorization metadata). There is deliberately no --token
//           flag: a token on the command line shows in `ps` and in shell
//           history.
//
// The config file is --config, then $LORACTL_CONFIG, then
// $XDG_CONFIG_HOME/loractl/config.yaml, then $HOME/.config/loractl/
// config.yaml. A file named by --config or $LORACTL_CONFIG must exist; the
// default one may be missing. It is YAML:
//
//   server: lorad.example:7070
//   token: 3b6f0c1e9a0d4c8f...
//
// Unknown keys and wrong types are errors naming the file, line and key.
// Empty environment variables count as unset. Functions are pure apart from
// reading the config file; thread-safe.
#ifndef LORA_SWEEP_LORACTL_CLIENT_CONFIG_H_
#define LORA_SWEEP_LORACTL_CLIENT_CONFIG_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace lora::loractl {

inline constexpr char kDefaultServer[] = "127.0.0.1:7070";

// Looks up an environment variable (std::nullopt when unset).
using EnvLookup =
    std::function<std::optional<std::string>(const std::string& name)>;

// The process environment.
EnvLookup ProcessEnv();

struct ConfigFile {
  std::optional<std::string> server;
  std::optional<std::string> token;
};

// Parses a config file's text. InvalidArgument "<source>:<line>: <key>:
// <problem>" for syntax errors, unknown keys (with a suggestion) and values
// that are not strings. An empty file is an empty config.
absl::StatusOr<ConfigFile> ParseConfigFile(const std::string& text,
                                           const std::string& source);

// The config file to read and whether it was named explicitly.
struct ConfigPath {
  std::string path;  // "" when HOME and XDG_CONFIG_HOME are both unset
  bool explicit_path = false;
};
ConfigPath FindConfigPath(const std::optional<std::string>& config_flag,
                          const EnvLookup& env);

struct ClientSettings {
  std::string server;
  std::string token;
  // Where each came from, for messages: "--server", "$LORACTL_SERVER", the
  // config file's path, or "default"; "" for no token.
  std::string server_source;
  std::string token_source;
  // The config file that was read ("" when none was).
  std::string config_path;
};

// Resolves the settings as described at the top. Errors (InvalidArgument):
// an explicitly named config file that cannot be read, a malformed config
// file, an empty --server.
absl::StatusOr<ClientSettings> ResolveClientSettings(
    const std::optional<std::string>& server_flag,
    const std::optional<std::string>& config_flag, const EnvLookup& env);

}  // namespace lora::loractl

#endif  // LORA_SWEEP_LORACTL_CLIENT_CONFIG_H_
