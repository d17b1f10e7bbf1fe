// Runs the loractl binary as a user would, for end-to-end tests: a child
// process with its own environment and working folder, stdin from
// /dev/null, stdout and stderr captured to files (so stdout is not a
// terminal: `watch` appends lines). The binary comes from the test's
// runfiles: the cc_test must list "//loractl" in `data`.
//
// Not thread-safe per object; separate objects may run concurrently.
#ifndef LORA_SWEEP_TESTS_LORACTL_LORACTL_RUNNER_H_
#define LORA_SWEEP_TESTS_LORACTL_LORACTL_RUNNER_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace lora::loractl::testing {

struct LoractlResult {
  int exit_code = -1;  // -1 when killed (timeout)
  std::string out;
  std::string err;
  bool timed_out = false;
};

// What a child starts with: exactly these variables (PATH is added when
// missing), run in `cwd` ("" = the test's working folder).
struct LoractlEnv {
  std::map<std::string, std::string> vars;
  std::string cwd;
};

// $TEST_SRCDIR/$TEST_WORKSPACE/loractl/loractl.
std::string LoractlBinary();

class LoractlProcess {
 public:
  // Starts `loractl args...`; outputs go to files under $TEST_TMPDIR.
  static absl::StatusOr<std::unique_ptr<LoractlProcess>> Start(
      const std::vector<std::string>& args, const LoractlEnv& env);
  ~LoractlProcess();  // kills the child if it still runs

  // Waits for the exit (SIGKILL after `timeout`) and returns the outputs.
  LoractlResult Wait(absl::Duration timeout = absl::Seconds(60));
  // What the child wrote to stdout so far.
  std::string OutSoFar() const;
  std::string ErrSoFar() const;

 private:
  LoractlProcess() = default;
  pid_t pid_ = -1;
  std::string out_path_;
  std::string err_path_;
};

// Start + Wait.
LoractlResult RunLoractl(const std::vector<std::string>& args,
                         const LoractlEnv& env,
                         absl::Duration timeout = absl::Seconds(60));

// A readable account of a run for assertion messages.
std::string Describe(const std::vector<std::string>& args,
                     const LoractlResult& result);

}  // namespace lora::loractl::testing

#endif  // LORA_SWEEP_TESTS_LORACTL_LORACTL_RUNNER_H_
