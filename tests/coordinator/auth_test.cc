// Tokens files (parsing, errors by file and line, the mode check), bearer
// authentication without echoing secrets, and the role matrix.
#include "coordinator/auth.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lora::coordinator {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kClientToken[] = "c1ient-t0ken-0123456789abcdef";
constexpr char kWorkerToken[] = "w0rker-t0ken-0123456789abcdef";
constexpr char kAdminToken[] = "adm1n-t0ken-0123456789abcdef";

const std::string& GoodFile() {
  static const auto* text = new std::string(absl::StrCat(
      "# lorad tokens\n", "\n", "client ", kClientToken, " alice\n",
      "  worker\t", kWorkerToken, "   pool-a   # the GPU pool\r\n", "admin ",
      kAdminToken, "\n", "   # indented comment\n"));
  return *text;
}

// Writes `text` to a file named `name` in a fresh folder, with `mode`.
std::string WriteTokensFile(const std::string& name, const std::string& text,
                            mode_t mode = 0600) {
  const std::string dir =
      std::string(std::getenv("TEST_TMPDIR")) + "/" +
      ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/" + name;
  std::filesystem::remove(path);
  {
    std::ofstream out(path);
    out << text;
  }
  EXPECT_EQ(::chmod(path.c_str(), mode), 0);
  return path;
}

TEST(LoadTokensTest, ParsesAGoodFile) {
  const std::string path = WriteTokensFile("tokens", GoodFile());
  auto table = LoadTokens(path);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_TRUE(table->enabled());
  EXPECT_EQ(table->size(), 3u);

  auto alice = table->Authenticate(absl::StrCat("Bearer ", kClientToken));
  ASSERT_TRUE(alice.ok()) << alice.status();
  EXPECT_EQ(alice->name, "alice");
  EXPECT_EQ(alice->role, Role::kClient);

  auto pool = table->Authenticate(absl::StrCat("Bearer ", kWorkerToken));
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ(pool->name, "pool-a");
  EXPECT_EQ(pool->role, Role::kWorker);

  // Unnamed: named after its place.
  auto admin = table->Authenticate(absl::StrCat("Bearer ", kAdminToken));
  ASSERT_TRUE(admin.ok()) << admin.status();
  EXPECT_EQ(admin->name, "tokens:5");
  EXPECT_EQ(admin->role, Role::kAdmin);
}

struct BadLine {
  std::string text;
  int line;
  std::string expected;     // in the message
  std::string secret = "";  // never in the message
};

class BadTokensFileTest : public ::testing::TestWithParam<BadLine> {};

TEST_P(BadTokensFileTest, FailsNamingFileAndLine) {
  const BadLine& bad = GetParam();
  const std::string path = WriteTokensFile("tokens.txt", bad.text);
  auto table = LoadTokens(path);
  ASSERT_TRUE(absl::IsInvalidArgument(table.status())) << table.status();
  EXPECT_THAT(table.status().message(),
              AllOf(HasSubstr(absl::StrCat(path, ":", bad.line, ": ")),
                    HasSubstr(bad.expected)));
  if (!bad.secret.empty()) {
    EXPECT_THAT(table.status().message(), Not(HasSubstr(bad.secret)));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Errors, BadTokensFileTest,
    ::testing::Values(
        BadLine{absl::StrCat("# ok\nroot ", kClientToken, "\n"), 2,
                "unknown role \"root\""},
        // A token written before its role is not quoted.
        BadLine{absl::StrCat(kClientToken, " client\n"), 1,
                "is the token first?", kClientToken},
        BadLine{"\n\nworker\n", 3, "missing token"},
        BadLine{"client sh0rt-t0ken alice\n", 1,
                "the token is 11 characters long; at least 16", "sh0rt-t0ken"},
        BadLine{absl::StrCat("client ", kClientToken, " a\nadmin ",
                             kClientToken, " b\n"),
                2, "duplicate token: line 1 holds the same token",
                kClientToken},
        BadLine{absl::StrCat("client ", kClientToken, " alice smith\n"), 1,
                "4 fields", kClientToken},
        BadLine{"client t\xc3\xb6ken-0123456789abcdef\n", 1,
                "other than visible ASCII", "ken-0123456789abcdef"}),
    [](const auto& info) { return absl::StrCat("Case", info.index); });

TEST(LoadTokensTest, FileWithoutTokensIsRefused) {
  const std::string path = WriteTokensFile("tokens", "# nobody yet\n\n");
  auto table = LoadTokens(path);
  EXPECT_TRUE(absl::IsInvalidArgument(table.status())) << table.status();
  EXPECT_THAT(table.status().message(),
              AllOf(HasSubstr(path), HasSubstr("no tokens")));
}

TEST(LoadTokensTest, FileReadableByOthersIsRefused) {
  for (const mode_t mode : {0644, 0640, 0604, 0660, 0610, 0601}) {
    const std::string path = WriteTokensFile("tokens", GoodFile(), mode);
    auto table = LoadTokens(path);
    EXPECT_TRUE(absl::IsFailedPrecondition(table.status()))
        << std::oct << mode << ": " << table.status();
    char shown[8];
    std::snprintf(shown, sizeof(shown), "%04o", mode);
    EXPECT_THAT(table.status().message(),
                AllOf(HasSubstr(path), HasSubstr(shown)));
  }
  for (const mode_t mode : {0600, 0400}) {
    const std::string path = WriteTokensFile("tokens", GoodFile(), mode);
    EXPECT_TRUE(LoadTokens(path).ok()) << std::oct << mode;
  }
}

TEST(LoadTokensTest, MissingFileAndFolderAreRefused) {
  const std::string path = WriteTokensFile("tokens", GoodFile());
  EXPECT_TRUE(absl::IsNotFound(LoadTokens(path + ".missing").status()));
  const std::string folder = path + ".d";
  std::filesystem::create_directories(folder);
  ::chmod(folder.c_str(), 0700);
  EXPECT_TRUE(absl::IsInvalidArgument(LoadTokens(folder).status()));
}

class AuthenticateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto table = TokenTable::Parse(GoodFile(), "tokens");
    ASSERT_TRUE(table.ok()) << table.status();
    table_ = *table;
  }
  TokenTable table_;
};

TEST_F(AuthenticateTest, AcceptsBearerInAnyCase) {
  for (const std::string& header :
       {absl::StrCat("Bearer ", kWorkerToken),
        absl::StrCat("bearer ", kWorkerToken),
        absl::StrCat("BEARER   ", kWorkerToken, "  "),
        absl::StrCat("Bearer\t", kWorkerToken)}) {
    auto principal = table_.Authenticate(header);
    ASSERT_TRUE(principal.ok()) << header << ": " << principal.status();
    EXPECT_EQ(principal->name, "pool-a");
  }
}

TEST_F(AuthenticateTest, RefusesWithoutEchoingTheToken) {
  const std::string unknown = "unkn0wn-t0ken-0123456789abcdef";
  for (const std::string& header :
       {std::string(""), std::string("   "), std::string(kClientToken),
        absl::StrCat("Basic ", kClientToken),
        absl::StrCat("Token ", kClientToken), std::string("Bearer "),
        absl::StrCat("Bearer ", unknown),
        // A prefix or an extension of a valid token is not valid.
        absl::StrCat("Bearer ", std::string(kClientToken).substr(0, 20)),
        absl::StrCat("Bearer ", kClientToken, "x"),
        absl::StrCat("Bearer ", kClientToken, " extra")}) {
    auto principal = table_.Authenticate(header);
    EXPECT_TRUE(absl::IsUnauthenticated(principal.status()))
        << header << ": " << principal.status();
    EXPECT_THAT(principal.status().message(),
                AllOf(Not(HasSubstr(kClientToken)), Not(HasSubstr(unknown)),
                      Not(HasSubstr("c1ient-t0ken"))))
        << header;
  }
}

TEST_F(AuthenticateTest, MessagesSayWhatIsWrong) {
  EXPECT_THAT(table_.Authenticate("").status().message(), HasSubstr("missing"));
  EXPECT_THAT(table_.Authenticate(absl::StrCat("Basic ", kClientToken))
                  .status()
                  .message(),
              HasSubstr("scheme"));
  EXPECT_THAT(table_.Authenticate("Bearer unkn0wn-t0ken-0123456789abcdef")
                  .status()
                  .message(),
              HasSubstr("unknown bearer token"));
}

TEST(TokenTableTest, EmptyTableMeansAuthIsOffAndAuthenticatesNobody) {
  TokenTable table;
  EXPECT_FALSE(table.enabled());
  EXPECT_TRUE(absl::IsUnauthenticated(
      table.Authenticate(absl::StrCat("Bearer ", kClientToken)).status()));
}

TEST(AuthorizeTest, RoleMatrix) {
  struct Case {
    Role role;
    Role required;
    bool allowed;
  };
  for (const Case& c : {Case{Role::kClient, Role::kClient, true},
                        Case{Role::kClient, Role::kWorker, false},
                        Case{Role::kClient, Role::kAdmin, false},
                        Case{Role::kWorker, Role::kClient, false},
                        Case{Role::kWorker, Role::kWorker, true},
                        Case{Role::kWorker, Role::kAdmin, false},
                        Case{Role::kAdmin, Role::kClient, true},
                        Case{Role::kAdmin, Role::kWorker, true},
                        Case{Role::kAdmin, Role::kAdmin, true}}) {
    const absl::Status status = Authorize({"someone", c.role}, c.required);
    EXPECT_EQ(status.ok(), c.allowed)
        << RoleName(c.role) << " -> " << RoleName(c.required) << ": " << status;
    if (!c.allowed) {
      EXPECT_TRUE(absl::IsPermissionDenied(status)) << status;
      EXPECT_THAT(status.message(), HasSubstr(absl::StrCat(
                                        RoleName(c.role), " token 'someone'")));
    }
  }
}

TEST(AuthorizeTest, MessageNamesPrincipalAndService) {
  EXPECT_THAT(Authorize({"pool-a", Role::kWorker}, Role::kClient).message(),
              HasSubstr("worker token 'pool-a' may not call SweepService"));
  EXPECT_THAT(Authorize({"alice", Role::kClient}, Role::kWorker).message(),
              HasSubstr("client token 'alice' may not call WorkerService"));
}

}  // namespace
}  // namespace lora::coordinator
