// The setting of loractl's end-to-end tests: a real lorad (started with
// tests/integration/lorad_process.h) on 127.0.0.1, a working folder for
// sweep files, a HOME with no config file, and loractl children pointed at
// lorad through LORACTL_SERVER, as a user's shell would.
#ifndef LORA_SWEEP_TESTS_LORACTL_E2E_FIXTURE_H_
#define LORA_SWEEP_TESTS_LORACTL_E2E_FIXTURE_H_

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lora/v1/sweep_service.grpc.pb.h"
#include "tests/integration/lorad_process.h"
#include "tests/loractl/loractl_runner.h"

namespace lora::loractl::testing {

class LoractlE2eTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // (Re)starts lorad on dir_/lorad; `port` 0 = any.
  void StartLorad(int port = 0);

  // Runs loractl with env_ in work_.
  LoractlResult Run(const std::vector<std::string>& args,
                    absl::Duration timeout = absl::Seconds(60));
  absl::StatusOr<std::unique_ptr<LoractlProcess>> Start(
      const std::vector<std::string>& args);

  // Writes work_/<name> and returns <name> (relative, as a user types it).
  std::string WriteFile(const std::string& name, const std::string& text);
  std::string ReadFile(const std::string& path) const;

  // The sw-... id in `submit`'s first line ("" when absent).
  static std::string SweepIdOf(const std::string& out);

  // Every sweep and artifact lorad holds.
  std::vector<v1::Sweep> AllSweeps();
  std::vector<v1::Artifact> AllArtifacts();

  std::string dir_;   // the test's folder
  std::string work_;  // loractl's working folder
  LoractlEnv env_;
  std::unique_ptr<integration::LoradProcess> lorad_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
};

// 1234567 -> "1,234,567", written independently of loractl's helper.
std::string Commas(int64_t value);

}  // namespace lora::loractl::testing

#endif  // LORA_SWEEP_TESTS_LORACTL_E2E_FIXTURE_H_
