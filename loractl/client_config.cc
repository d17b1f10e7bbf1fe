#include "loractl/client_config.h"

#include <cstdlib>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "base/yaml_fields.h"

namespace lora::loractl {
namespace {

std::optional<std::string> NonEmpty(const EnvLookup& env,
                                    const std::string& name) {
  std::optional<std::string> value = env(name);
  if (value.has_value() && value->empty()) return std::nullopt;
  return value;
}

}  // namespace

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

absl::StatusOr<ConfigFile> ParseConfigFile(const std::string& text,
                                           const std::string& source) {
  ConfigFile config;
  absl::StatusOr<YAML::Node> root = LoadYamlDocument(text, source);
  if (!root.ok()) {
    // Only comments, or nothing: no settings.
    if (absl::StrContains(root.status().message(), "file is empty")) {
      return config;
    }
    return root.status();
  }
  YamlFields fields(source);
  if (!root->IsMap()) {
    return fields.Error(*root, "config",
                        "expected a mapping with the keys server and token");
  }
  auto string_into = [&fields](std::optional<std::string>* out) {
    return [&fields, out](const YAML::Node& node,
                          const std::string& key) -> absl::Status {
      LORA_ASSIGN_OR_RETURN(*out, fields.String(node, key));
      return absl::OkStatus();
    };
  };
  LORA_RETURN_IF_ERROR(
      fields.ForEachKey(*root, "",
                        {{"server", string_into(&config.server)},
                         {"token", string_into(&config.token)}}));
  return config;
}

ConfigPath FindConfigPath(const std::optional<std::string>& config_flag,
                          const EnvLookup& env) {
  if (config_flag.has_value()) return {ExpandHome(*config_flag), true};
  if (std::optional<std::string> path = NonEmpty(env, "LORACTL_CONFIG")) {
    return {*path, true};
  }
  if (std::optional<std::string> xdg = NonEmpty(env, "XDG_CONFIG_HOME")) {
    return {absl::StrCat(*xdg, "/loractl/config.yaml"), false};
  }
  if (std::optional<std::string> home = NonEmpty(env, "HOME")) {
    return {absl::StrCat(*home, "/.config/loractl/config.yaml"), false};
  }
  return {"", false};
}

absl::StatusOr<ClientSettings> ResolveClientSettings(
    const std::optional<std::string>& server_flag,
    const std::optional<std::string>& config_flag, const EnvLookup& env) {
  ClientSettings settings;
  ConfigFile config;
  const ConfigPath path = FindConfigPath(config_flag, env);
  if (!path.path.empty()) {
    absl::StatusOr<std::string> text = ReadFile(path.path);
    if (text.ok()) {
      LORA_ASSIGN_OR_RETURN(config, ParseConfigFile(*text, path.path));
      settings.config_path = path.path;
    } else if (path.explicit_path || !absl::IsNotFound(text.status())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot read the config file: ", text.status().message()));
    }
  }
  if (server_flag.has_value()) {
    if (server_flag->empty()) {
      return absl::InvalidArgumentError(
          "--server: expected HOST:PORT, got \"\"");
    }
    settings.server = *server_flag;
    settings.server_source = "--server";
  } else if (std::optional<std::string> server =
                 NonEmpty(env, "LORACTL_SERVER")) {
    settings.server = *server;
    settings.server_source = "$LORACTL_SERVER";
  } else if (config.server.has_value() && !config.server->empty()) {
    settings.server = *config.server;
    settings.server_source = settings.config_path;
  } else {
    settings.server = kDefaultServer;
    settings.server_source = "default";
  }
  if (std::optional<std::string> token = NonEmpty(env, "LORACTL_TOKEN")) {
    settings.token = *token;
    settings.token_source = "$LORACTL_TOKEN";
  } else if (config.token.has_value() && !config.token->empty()) {
    settings.token = *config.token;
    settings.token_source = settings.config_path;
  }
  return settings;
}

}  // namespace lora::loractl
