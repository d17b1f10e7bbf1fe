#include "worker/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

extern char** environ;

namespace lora::worker {
namespace {

ExitStatus FromWaitStatus(int status) {
  ExitStatus exit;
  if (WIFEXITED(status)) {
    exit.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    exit.signal = WTERMSIG(status);
  }
  return exit;
}

// Opens `path` (or /dev/null) for the child's output; -1 on failure.
int OpenOutput(const std::string& path) {
  return open(path.empty() ? "/dev/null" : path.c_str(),
              O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

}  // namespace

std::string ExitStatus::Describe() const {
  if (signal != 0) {
    return absl::StrCat("killed by signal ", signal, " (", strsignal(signal),
                        ")");
  }
  return absl::StrCat("exit status ", exit_code);
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const ChildSpec& spec) {
  if (spec.argv.empty()) {
    return absl::InvalidArgumentError("a child process needs a program");
  }
  // Everything the child needs is prepared before fork: after it, only
  // async-signal-safe calls.
  std::vector<std::string> env_strings;
  std::map<std::string, std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text = *entry;
    const size_t eq = text.find('=');
    if (eq != std::string::npos) env[text.substr(0, eq)] = text.substr(eq + 1);
  }
  for (const auto& [key, value] : spec.env) env[key] = value;
  for (const auto& [key, value] : env) env_strings.push_back(key + "=" + value);
  std::vector<char*> envp, argv;
  for (std::string& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = spec.argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const int out = OpenOutput(spec.stdout_path);
  const int err = OpenOutput(spec.stderr_path);
  if (out < 0 || err < 0) {
    const int error = errno;
    if (out >= 0) close(out);
    if (err >= 0) close(err);
    return absl::InternalError(absl::StrCat("cannot open the output of ",
                                            spec.argv[0], ": ",
                                            std::strerror(error)));
  }
  const pid_t pid = fork();
  if (pid < 0) {
    const int error = errno;
    close(out);
    close(err);
    return absl::ResourceExhaustedError(
        absl::StrCat("fork: ", std::strerror(error)));
  }
  if (pid == 0) {
    setpgid(0, 0);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    const int in = open("/dev/null", O_RDONLY);
    if (in >= 0) {
      dup2(in, STDIN_FILENO);
      if (in != STDIN_FILENO) close(in);
    }
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    if (!spec.working_dir.empty() && chdir(spec.working_dir.c_str()) != 0) {
      _exit(127);
    }
    execve(argv[0], argv.data(), envp.data());
    const char* reason = strerror(errno);
    (void)!write(STDERR_FILENO, "exec failed: ", 13);
    (void)!write(STDERR_FILENO, reason, strlen(reason));
    (void)!write(STDERR_FILENO, "\n", 1);
    _exit(127);
  }
  setpgid(pid, pid);  // also from the parent, so no signal races the child
  close(out);
  close(err);
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid));
}

ChildProcess::~ChildProcess() {
  if (!Poll()) {
    Signal(SIGKILL);
    Wait(absl::InfiniteDuration());
  }
}

std::optional<ExitStatus> ChildProcess::Poll() {
  if (status_) return status_;
  int status = 0;
  const pid_t done = waitpid(pid_, &status, WNOHANG);
  if (done == pid_) status_ = FromWaitStatus(status);
  return status_;
}

std::optional<ExitStatus> ChildProcess::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (std::optional<ExitStatus> status = Poll()) return status;
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

void ChildProcess::Signal(int signal) {
  if (status_) return;
  kill(-pid_, signal);
}

ExitStatus ChildProcess::Terminate(absl::Duration grace) {
  Signal(SIGTERM);
  if (std::optional<ExitStatus> status = Wait(grace)) return *status;
  Signal(SIGKILL);
  return *Wait(absl::InfiniteDuration());
}

std::string FileTail(const std::string& path, size_t max_bytes) {
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) return "";
  const std::streamoff size = file.tellg();
  const std::streamoff start =
      size > static_cast<std::streamoff>(max_bytes) ? size - max_bytes : 0;
  file.seekg(start);
  std::string tail(static_cast<size_t>(size - start), '\0');
  file.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  if (start > 0) {
    const size_t newline = tail.find('\n');
    if (newline != std::string::npos && newline + 1 < tail.size()) {
      tail = tail.substr(newline + 1);
    }
  }
  return tail;
}

}  // namespace lora::worker
