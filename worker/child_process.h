// A child process in its own process group, with its output in files: how
// the worker runs each training job, so that a crash, an out-of-memory kill
// or a hang takes down the job and not the worker.
#ifndef LORA_SWEEP_WORKER_CHILD_PROCESS_H_
#define LORA_SWEEP_WORKER_CHILD_PROCESS_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace lora::worker {

struct ChildSpec {
  std::vector<std::string> argv;  // argv[0] is the program path
  // Added to (or replacing in) the worker's environment.
  std::map<std::string, std::string> env;
  std::string working_dir;  // "" = the worker's
  std::string stdout_path;  // "" = /dev/null
  std::string stderr_path;  // "" = /dev/null
};

// How a child ended.
struct ExitStatus {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;      // 0 when it exited
  bool success() const { return exit_code == 0 && signal == 0; }
  // "exit status 3" or "killed by signal 9 (Killed)".
  std::string Describe() const;
};

class ChildProcess {
 public:
  // Starts the child (fork + exec). InvalidArgument for an empty argv;
  // the errno of a failed exec is reported as the child's exit status 127
  // with the reason on its stderr file.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(
      const ChildSpec& spec);

  // Kills the process group with SIGKILL if it is still running, and reaps.
  ~ChildProcess();

  pid_t pid() const { return pid_; }

  // The exit status once the child has ended (reaping it), without waiting.
  std::optional<ExitStatus> Poll();

  // Waits up to `timeout` for the child to end.
  std::optional<ExitStatus> Wait(absl::Duration timeout);

  // Sends `signal` to the child's whole process group.
  void Signal(int signal);

  // SIGTERM, then SIGKILL if the child has not ended within `grace`.
  ExitStatus Terminate(absl::Duration grace);

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}

  const pid_t pid_;
  std::optional<ExitStatus> status_;
};

// The last `max_bytes` of a file (from a line start when possible), for
// error reports; "" when it cannot be read.
std::string FileTail(const std::string& path, size_t max_bytes);

}  // namespace lora::worker

#endif  // LORA_SWEEP_WORKER_CHILD_PROCESS_H_
