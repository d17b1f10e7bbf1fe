// Where loractl finds lorad and its token: --server, then LORACTL_SERVER,
// then the config file, then the default; the token from LORACTL_TOKEN,
// then the config file.
#include "loractl/client_config.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lora::loractl {
namespace {

using ::testing::HasSubstr;

class ClientConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = std::string(std::getenv("TEST_TMPDIR")) + "/home-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(home_);
    std::filesystem::create_directories(home_ + "/.config/loractl");
    env_["HOME"] = home_;
  }

  void WriteConfig(const std::string& text, const std::string& path = "") {
    std::ofstream(path.empty() ? DefaultPath() : path) << text;
  }
  std::string DefaultPath() const {
    return home_ + "/.config/loractl/config.yaml";
  }

  EnvLookup Env() const {
    return [this](const std::string& name) -> std::optional<std::string> {
      auto it = env_.find(name);
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
  }

  absl::StatusOr<ClientSettings> Resolve(
      std::optional<std::string> server_flag = std::nullopt,
      std::optional<std::string> config_flag = std::nullopt) {
    return ResolveClientSettings(server_flag, config_flag, Env());
  }

  std::string home_;
  std::map<std::string, std::string> env_;
};

TEST_F(ClientConfigTest, DefaultsWithNoConfigFile) {
  std::filesystem::remove_all(home_ + "/.config");
  absl::StatusOr<ClientSettings> settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->server, "127.0.0.1:7070");
  EXPECT_EQ(settings->server_source, "default");
  EXPECT_EQ(settings->token, "");
  EXPECT_EQ(settings->config_path, "");
}

TEST_F(ClientConfigTest, ServerPrecedenceFlagThenEnvThenFileThenDefault) {
  WriteConfig("server: file.example:7070\ntoken: file-token\n");
  env_["LORACTL_SERVER"] = "env.example:7070";

  absl::StatusOr<ClientSettings> settings = Resolve("flag.example:7070");
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->server, "flag.example:7070");
  EXPECT_EQ(settings->server_source, "--server");

  settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->server, "env.example:7070");
  EXPECT_EQ(settings->server_source, "$LORACTL_SERVER");

  env_.erase("LORACTL_SERVER");
  settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->server, "file.example:7070");
  EXPECT_EQ(settings->server_source, DefaultPath());

  // An empty variable counts as unset.
  env_["LORACTL_SERVER"] = "";
  EXPECT_EQ(Resolve()->server, "file.example:7070");

  WriteConfig("token: only-a-token\n");
  EXPECT_EQ(Resolve()->server, "127.0.0.1:7070");
}

TEST_F(ClientConfigTest, TokenPrecedenceEnvThenFile) {
  WriteConfig("token: file-token\n");
  env_["LORACTL_TOKEN"] = "env-token";
  EXPECT_EQ(Resolve()->token, "env-token");
  EXPECT_EQ(Resolve()->token_source, "$LORACTL_TOKEN");
  env_.erase("LORACTL_TOKEN");
  EXPECT_EQ(Resolve()->token, "file-token");
  EXPECT_EQ(Resolve()->token_source, DefaultPath());
}

TEST_F(ClientConfigTest, ConfigFileFromFlagThenEnvThenXdgThenHome) {
  const std::string flag_file = home_ + "/flag.yaml";
  const std::string env_file = home_ + "/env.yaml";
  const std::string xdg = home_ + "/xdg";
  std::filesystem::create_directories(xdg + "/loractl");
  WriteConfig("server: flag:1\n", flag_file);
  WriteConfig("server: env:1\n", env_file);
  WriteConfig("server: xdg:1\n", xdg + "/loractl/config.yaml");
  WriteConfig("server: home:1\n");

  env_["LORACTL_CONFIG"] = env_file;
  env_["XDG_CONFIG_HOME"] = xdg;
  EXPECT_EQ(Resolve(std::nullopt, flag_file)->server, "flag:1");
  EXPECT_EQ(Resolve()->server, "env:1");
  env_.erase("LORACTL_CONFIG");
  EXPECT_EQ(Resolve()->server, "xdg:1");
  env_.erase("XDG_CONFIG_HOME");
  EXPECT_EQ(Resolve()->server, "home:1");
}

TEST_F(ClientConfigTest, ANamedConfigFileMustExistTheDefaultNeedNot) {
  std::filesystem::remove(DefaultPath());
  EXPECT_TRUE(Resolve().ok());
  absl::StatusOr<ClientSettings> settings =
      Resolve(std::nullopt, home_ + "/missing.yaml");
  ASSERT_FALSE(settings.ok());
  EXPECT_EQ(settings.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(settings.status().message(), HasSubstr("missing.yaml"));
  env_["LORACTL_CONFIG"] = home_ + "/also-missing.yaml";
  EXPECT_FALSE(Resolve().ok());
}

TEST_F(ClientConfigTest, MalformedConfigFilesNameFileLineAndKey) {
  WriteConfig("server: a:1\ntokne: x\n");
  absl::StatusOr<ClientSettings> settings = Resolve();
  ASSERT_FALSE(settings.ok());
  EXPECT_THAT(settings.status().message(),
              HasSubstr(DefaultPath() + ":2: tokne: unknown key; did you "
                                        "mean token?"));
  WriteConfig("server: [a, b]\n");
  EXPECT_THAT(std::string(Resolve().status().message()),
              HasSubstr(":1: server: expected a string"));
  WriteConfig("server: a:1\nserver: b:1\n");
  EXPECT_THAT(std::string(Resolve().status().message()),
              HasSubstr(":2: server: given twice"));
  // Only comments: no settings, no error.
  WriteConfig("# nothing yet\n");
  EXPECT_EQ(Resolve()->server, "127.0.0.1:7070");
}

TEST_F(ClientConfigTest, AnEmptyServerFlagIsAnError) {
  EXPECT_FALSE(Resolve("").ok());
}

}  // namespace
}  // namespace lora::loractl
