#include "lora_core/rank_launcher.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lora_core/distributed_env.h"

extern char** environ;

namespace lora::core {
namespace {

// The running ranks' pids (0 once reaped), for the signal handler. Set up
// before the handlers are installed; one LaunchRanks at a time.
std::atomic<pid_t>* running_ranks = nullptr;
std::atomic<int> running_rank_count{0};

void ForwardSignal(int signal) {
  const int count = running_rank_count.load();
  for (int i = 0; i < count; ++i) {
    const pid_t pid = running_ranks[i].load();
    if (pid > 0) ::kill(pid, signal);
  }
}

int ShellStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

absl::Status ErrnoError(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

bool IsRankVariable(const char* entry) {
  for (const char* name :
       {kRankVariable, kLocalRankVariable, kWorldSizeVariable,
        kMasterAddrVariable, kMasterPortVariable}) {
    if (absl::StartsWith(entry, absl::StrCat(name, "="))) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<int> FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return ErrnoError("cannot create a socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    absl::Status status = ErrnoError("cannot bind a port on 127.0.0.1");
    ::close(fd);
    return status;
  }
  ::close(fd);
  return static_cast<int>(ntohs(address.sin_port));
}

absl::StatusOr<int> LaunchRanks(const RankLaunchOptions& options) {
  if (options.world_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("world_size must be >= 1, got ", options.world_size));
  }
  int port = options.master_port;
  if (port == 0) {
    absl::StatusOr<int> free_port = FreeLoopbackPort();
    if (!free_port.ok()) return free_port.status();
    port = *free_port;
  }
  const int world_size = options.world_size;

  // Everything execve needs, built before fork: the child may only make
  // async-signal-safe calls.
  std::vector<std::string> base_environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (!IsRankVariable(*entry)) base_environment.push_back(*entry);
  }
  std::vector<std::vector<std::string>> environments(world_size,
                                                     base_environment);
  std::vector<std::vector<char*>> envps(world_size);
  for (int rank = 0; rank < world_size; ++rank) {
    std::vector<std::string>& environment = environments[rank];
    environment.push_back(absl::StrCat(kRankVariable, "=", rank));
    environment.push_back(absl::StrCat(kLocalRankVariable, "=", rank));
    environment.push_back(absl::StrCat(kWorldSizeVariable, "=", world_size));
    environment.push_back(
        absl::StrCat(kMasterAddrVariable, "=", options.master_addr));
    environment.push_back(absl::StrCat(kMasterPortVariable, "=", port));
    for (std::string& entry : environment) envps[rank].push_back(entry.data());
    envps[rank].push_back(nullptr);
  }
  std::vector<std::string> arguments = options.argv;
  std::vector<char*> argv;
  for (std::string& argument : arguments) argv.push_back(argument.data());
  argv.push_back(nullptr);

  auto ranks = std::make_unique<std::atomic<pid_t>[]>(world_size);
  for (int rank = 0; rank < world_size; ++rank) ranks[rank].store(0);
  running_ranks = ranks.get();
  running_rank_count.store(world_size);

  // Signals wait until every pid is known, so none misses a forwarded one.
  sigset_t forwarded, previous_mask;
  sigemptyset(&forwarded);
  sigaddset(&forwarded, SIGTERM);
  sigaddset(&forwarded, SIGINT);
  ::sigprocmask(SIG_BLOCK, &forwarded, &previous_mask);
  struct sigaction forward {};
  forward.sa_handler = ForwardSignal;
  sigemptyset(&forward.sa_mask);
  forward.sa_flags = SA_RESTART;
  struct sigaction previous_term {
  }, previous_int{};
  ::sigaction(SIGTERM, &forward, &previous_term);
  ::sigaction(SIGINT, &forward, &previous_int);
  auto restore_signals = [&] {
    ::sigaction(SIGTERM, &previous_term, nullptr);
    ::sigaction(SIGINT, &previous_int, nullptr);
    running_rank_count.store(0);
    running_ranks = nullptr;
    ::sigprocmask(SIG_SETMASK, &previous_mask, nullptr);
  };
  auto kill_all = [&](int signal) {
    for (int rank = 0; rank < world_size; ++rank) {
      const pid_t pid = ranks[rank].load();
      if (pid > 0) ::kill(pid, signal);
    }
  };

  const pid_t launcher = ::getpid();
  for (int rank = 0; rank < world_size; ++rank) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      absl::Status status =
          ErrnoError(absl::StrCat("cannot start rank ", rank));
      kill_all(SIGKILL);
      for (int started = 0; started < rank; ++started) {
        ::waitpid(ranks[started].load(), nullptr, 0);
      }
      restore_signals();
      return status;
    }
    if (pid == 0) {
      ::signal(SIGTERM, SIG_DFL);
      ::signal(SIGINT, SIG_DFL);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != launcher) ::_exit(1);  // the launcher already died
      ::sigprocmask(SIG_SETMASK, &previous_mask, nullptr);
      ::execve(options.executable.c_str(), argv.data(), envps[rank].data());
      static constexpr char kMessage[] = "lora-train: cannot exec a rank\n";
      (void)!::write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
      ::_exit(127);
    }
    ranks[rank].store(pid);
  }
  ::sigprocmask(SIG_UNBLOCK, &forwarded, nullptr);

  int remaining = world_size;
  int rank0_status = 1;
  int failed_rank = -1, failure_status = 0;
  bool rank0_killed_here = false;
  while (remaining > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;  // ECHILD: nothing left to wait for
    }
    int rank = -1;
    for (int i = 0; i < world_size; ++i) {
      if (ranks[i].load() == pid) rank = i;
    }
    if (rank < 0) continue;  // not a rank
    ranks[rank].store(0);
    --remaining;
    const int code = ShellStatus(status);
    if (rank == 0) {
      rank0_status = code;
      rank0_killed_here =
          failed_rank > 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    }
    if (code != 0 && failed_rank < 0) {
      failed_rank = rank;
      failure_status = code;
      kill_all(SIGKILL);
    }
  }
  restore_signals();
  return rank0_killed_here ? failure_status : rank0_status;
}

}  // namespace lora::core
