#include "tests/loractl/e2e_fixture.h"

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace lora::loractl::testing {

using integration::FreshTestDir;
using integration::LoradOptions;
using integration::LoradProcess;
using integration::PrepareContext;

void LoractlE2eTest::SetUp() {
  const ::testing::TestInfo* info =
      ::testing::UnitTest::GetInstance()->current_test_info();
  dir_ = FreshTestDir(absl::StrCat("loractl_", info->name()));
  work_ = dir_ + "/work";
  std::filesystem::create_directories(work_);
  std::filesystem::create_directories(dir_ + "/home");
  env_.vars["HOME"] = dir_ + "/home";
  env_.cwd = work_;
  ASSERT_NO_FATAL_FAILURE(StartLorad());
}

void LoractlE2eTest::TearDown() {
  // Clients first: lorad's shutdown waits for connected clients.
  sweeps_.reset();
  if (lorad_ != nullptr) {
    if (HasFailure()) std::cerr << "---- lorad log ----\n" << lorad_->Log();
    absl::Status stopped = lorad_->Stop();
    EXPECT_TRUE(stopped.ok()) << stopped;
  }
}

void LoractlE2eTest::StartLorad(int port) {
  LoradOptions options;
  options.dir = dir_ + "/lorad";
  options.heartbeat_interval = "200ms";
  // Leases outlive a restart and a loaded machine.
  options.lease_ttl = "30s";
  if (port != 0) {
    options.extra_flags.push_back(absl::StrCat("--listen=127.0.0.1:", port));
  }
  absl::StatusOr<std::unique_ptr<LoradProcess>> lorad =
      LoradProcess::Start(options);
  ASSERT_TRUE(lorad.ok()) << lorad.status();
  lorad_ = std::move(*lorad);
  sweeps_ = lorad_->SweepStub();
  env_.vars["LORACTL_SERVER"] = lorad_->grpc_address();
}

LoractlResult LoractlE2eTest::Run(const std::vector<std::string>& args,
                                  absl::Duration timeout) {
  return RunLoractl(args, env_, timeout);
}

absl::StatusOr<std::unique_ptr<LoractlProcess>> LoractlE2eTest::Start(
    const std::vector<std::string>& args) {
  return LoractlProcess::Start(args, env_);
}

std::string LoractlE2eTest::WriteFile(const std::string& name,
                                      const std::string& text) {
  const std::string path = work_ + "/" + name;
  std::filesystem::create_directories(
      std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
  return name;
}

std::string LoractlE2eTest::ReadFile(const std::string& path) const {
  std::ifstream file(path.front() == '/' ? path : work_ + "/" + path,
                     std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

std::string LoractlE2eTest::SweepIdOf(const std::string& out) {
  std::smatch match;
  if (std::regex_search(out, match, std::regex("sweep (sw-[0-9a-f]+) "))) {
    return match[1];
  }
  return "";
}

std::vector<v1::Sweep> LoractlE2eTest::AllSweeps() {
  grpc::ClientContext context;
  PrepareContext(&context, "");
  v1::ListSweepsRequest request;
  request.set_page_size(1000);
  v1::ListSweepsResponse response;
  grpc::Status status = sweeps_->ListSweeps(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return {response.sweeps().begin(), response.sweeps().end()};
}

std::vector<v1::Artifact> LoractlE2eTest::AllArtifacts() {
  grpc::ClientContext context;
  PrepareContext(&context, "");
  v1::ListArtifactsRequest request;
  request.set_page_size(1000);
  v1::ListArtifactsResponse response;
  grpc::Status status = sweeps_->ListArtifacts(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return {response.artifacts().begin(), response.artifacts().end()};
}

std::string Commas(int64_t value) {
  std::string digits = std::to_string(value);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) {
    digits.insert(static_cast<size_t>(i), ",");
  }
  return digits;
}

}  // namespace lora::loractl::testing
