#include "tests/integration/lorad_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace lora::integration {
namespace {

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value == nullptr ? fallback : std::string(value);
}

// The last `bytes` of a file, for error messages.
std::string Tail(const std::string& path, size_t bytes = 4000) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  const std::string all = text.str();
  return all.size() <= bytes ? all : all.substr(all.size() - bytes);
}

// Parses "grpc=<port>\nhttp=<port>\n"; false until both are there.
bool ParsePorts(const std::string& text, int* grpc_port, int* http_port) {
  bool grpc_seen = false;
  bool http_seen = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, '=');
    int port = 0;
    if (!absl::SimpleAtoi(kv.second, &port)) continue;
    if (kv.first == "grpc") {
      *grpc_port = port;
      grpc_seen = true;
    } else if (kv.first == "http") {
      *http_port = port;
      http_seen = true;
    }
  }
  return grpc_seen && http_seen;
}

}  // namespace

std::string LoradBinary() {
  return absl::StrCat(EnvOr("TEST_SRCDIR", "."), "/",
                      EnvOr("TEST_WORKSPACE", "__main__"),
                      "/coordinator/lorad");
}

std::string FreshTestDir(const std::string& name) {
  const std::string dir = absl::StrCat(EnvOr("TEST_TMPDIR", "/tmp"), "/", name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

void PrepareContext(grpc::ClientContext* context, const std::string& token,
                    absl::Duration timeout) {
  if (!token.empty()) {
    context->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  }
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

absl::StatusOr<std::unique_ptr<LoradProcess>> LoradProcess::Start(
    const LoradOptions& options) {
  std::filesystem::create_directories(options.dir);
  std::unique_ptr<LoradProcess> lorad(new LoradProcess());
  lorad->options_ = options;
  lorad->db_path_ = options.dir + "/runs.db";
  lorad->log_path_ = options.dir + "/lorad.log";
  const std::string ports_file = options.dir + "/ports";
  std::filesystem::remove(ports_file);

  std::vector<std::string> args = {
      LoradBinary(),
      "--listen=127.0.0.1:0",
      "--http=127.0.0.1:0",
      "--db=" + lorad->db_path_,
      "--artifact_root=" + options.dir + "/artifacts",
      "--ports_file=" + ports_file,
      "--heartbeat_interval=" + options.heartbeat_interval,
      "--lease_ttl=" + options.lease_ttl,
  };
  if (!options.tokens_file.empty()) {
    args.push_back("--tokens_file=" + options.tokens_file);
  }
  for (const std::string& flag : options.extra_flags) args.push_back(flag);
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  // Opened before fork: only async-signal-safe calls happen in the child.
  const int log_fd = ::open(lorad->log_path_.c_str(),
                            O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot open ", lorad->log_path_, ": errno ", errno));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return absl::InternalError(absl::StrCat("fork: errno ", errno));
  }
  if (pid == 0) {
    // Never outlive the test, even when it crashes.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  lorad->pid_ = pid;

  const absl::Time give_up = absl::Now() + options.start_timeout;
  while (true) {
    int wait_status = 0;
    if (::waitpid(pid, &wait_status, WNOHANG) == pid) {
      lorad->pid_ = -1;
      return absl::FailedPreconditionError(
          absl::StrCat("lorad exited before serving (wait status ", wait_status,
                       "); log:\n", Tail(lorad->log_path_)));
    }
    std::ifstream file(ports_file);
    if (file) {
      std::stringstream text;
      text << file.rdbuf();
      if (ParsePorts(text.str(), &lorad->grpc_port_, &lorad->http_port_)) {
        break;
      }
    }
    if (absl::Now() > give_up) {
      return absl::DeadlineExceededError(
          absl::StrCat("lorad wrote no ports file within ",
                       absl::FormatDuration(options.start_timeout), "; log:\n",
                       Tail(lorad->log_path_)));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  lorad->channel_ = lorad->NewChannel();
  if (!lorad->channel_->WaitForConnected(
          absl::ToChronoTime(absl::Now() + absl::Seconds(10)))) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to lorad at ", lorad->grpc_address(),
                     "; log:\n", Tail(lorad->log_path_)));
  }
  return lorad;
}

LoradProcess::~LoradProcess() {
  if (pid_ > 0) (void)Stop();
}

bool LoradProcess::WaitForExit(absl::Duration timeout, int* wait_status) {
  const absl::Time give_up = absl::Now() + timeout;
  while (true) {
    const pid_t done = ::waitpid(pid_, wait_status, WNOHANG);
    if (done == pid_ || (done < 0 && errno == ECHILD)) {
      pid_ = -1;
      return true;
    }
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

absl::Status LoradProcess::Stop() {
  if (pid_ <= 0) return absl::OkStatus();
  channel_.reset();
  ::kill(pid_, SIGTERM);
  int wait_status = 0;
  if (!WaitForExit(absl::Seconds(10), &wait_status)) {
    Kill();
    return absl::DeadlineExceededError(
        "lorad did not exit within 10 s of SIGTERM; killed");
  }
  if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0) {
    return absl::InternalError(absl::StrCat("lorad ended with wait status ",
                                            wait_status, "; log:\n",
                                            Tail(log_path_)));
  }
  return absl::OkStatus();
}

void LoradProcess::Kill() {
  if (pid_ <= 0) return;
  channel_.reset();
  ::kill(pid_, SIGKILL);
  int wait_status = 0;
  WaitForExit(absl::Seconds(30), &wait_status);
}

std::string LoradProcess::grpc_address() const {
  return absl::StrCat("127.0.0.1:", grpc_port_);
}

std::string LoradProcess::Log() const { return Tail(log_path_, 1 << 20); }

std::shared_ptr<grpc::Channel> LoradProcess::NewChannel() const {
  grpc::ChannelArguments arguments;
  // A private connection: channels to a restarted daemon never share a
  // subchannel with the one to the killed process.
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (!options_.tls_target_name.empty()) {
    arguments.SetSslTargetNameOverride(options_.tls_target_name);
  }
  return grpc::CreateCustomChannel(grpc_address(),
                                   options_.credentials != nullptr
                                       ? options_.credentials
                                       : grpc::InsecureChannelCredentials(),
                                   arguments);
}

std::unique_ptr<v1::SweepService::Stub> LoradProcess::SweepStub() const {
  return v1::SweepService::NewStub(channel_ != nullptr ? channel_
                                                       : NewChannel());
}

std::unique_ptr<v1::WorkerService::Stub> LoradProcess::WorkerStub() const {
  return v1::WorkerService::NewStub(channel_ != nullptr ? channel_
                                                        : NewChannel());
}

}  // namespace lora::integration
