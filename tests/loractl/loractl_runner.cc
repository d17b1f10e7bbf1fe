#include "tests/loractl/loractl_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace lora::loractl::testing {
namespace {

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value == nullptr ? fallback : std::string(value);
}

std::string ReadAll(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

std::atomic<int> counter{0};

}  // namespace

std::string LoractlBinary() {
  return absl::StrCat(EnvOr("TEST_SRCDIR", "."), "/",
                      EnvOr("TEST_WORKSPACE", "__main__"), "/loractl/loractl");
}

absl::StatusOr<std::unique_ptr<LoractlProcess>> LoractlProcess::Start(
    const std::vector<std::string>& args, const LoractlEnv& env) {
  std::unique_ptr<LoractlProcess> process(new LoractlProcess());
  const std::string base =
      absl::StrCat(EnvOr("TEST_TMPDIR", "/tmp"), "/loractl-", ::getpid(), "-",
                   counter.fetch_add(1));
  process->out_path_ = base + ".out";
  process->err_path_ = base + ".err";

  std::vector<std::string> argv_strings = {LoractlBinary()};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<std::string> env_strings;
  bool has_path = false;
  for (const auto& [name, value] : env.vars) {
    env_strings.push_back(absl::StrCat(name, "=", value));
    has_path = has_path || name == "PATH";
  }
  if (!has_path) env_strings.push_back("PATH=/usr/bin:/bin");
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (std::string& var : env_strings) envp.push_back(var.data());
  envp.push_back(nullptr);

  const int out_fd = ::open(process->out_path_.c_str(),
                            O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err_fd = ::open(process->err_path_.c_str(),
                            O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out_fd < 0 || err_fd < 0 || null_fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot open output files: errno ", errno));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    if (!env.cwd.empty() && ::chdir(env.cwd.c_str()) != 0) ::_exit(125);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(out_fd);
  ::close(err_fd);
  ::close(null_fd);
  process->pid_ = pid;
  return process;
}

LoractlProcess::~LoractlProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

LoractlResult LoractlProcess::Wait(absl::Duration timeout) {
  LoractlResult result;
  const absl::Time give_up = absl::Now() + timeout;
  int status = 0;
  while (pid_ > 0) {
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      pid_ = -1;
      break;
    }
    if (absl::Now() > give_up) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
      result.timed_out = true;
      break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  result.exit_code =
      !result.timed_out && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = ReadAll(out_path_);
  result.err = ReadAll(err_path_);
  return result;
}

std::string LoractlProcess::OutSoFar() const { return ReadAll(out_path_); }
std::string LoractlProcess::ErrSoFar() const { return ReadAll(err_path_); }

LoractlResult RunLoractl(const std::vector<std::string>& args,
                         const LoractlEnv& env, absl::Duration timeout) {
  absl::StatusOr<std::unique_ptr<LoractlProcess>> process =
      LoractlProcess::Start(args, env);
  if (!process.ok()) {
    LoractlResult result;
    result.err = std::string(process.status().message());
    return result;
  }
  return (*process)->Wait(timeout);
}

std::string Describe(const std::vector<std::string>& args,
                     const LoractlResult& result) {
  return absl::StrCat("loractl ", absl::StrJoin(args, " "), "\nexit ",
                      result.exit_code, result.timed_out ? " (timed out)" : "",
                      "\n--- stdout ---\n", result.out, "--- stderr ---\n",
                      result.err);
}

}  // namespace lora::loractl::testing
