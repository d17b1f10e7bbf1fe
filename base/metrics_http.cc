#include "base/metrics_http.h"

#include <httplib.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace lora::metrics {
namespace {

constexpr char kExpositionContentType[] =
    "text/plain; version=0.0.4; charset=utf-8";
constexpr char kTextContentType[] = "text/plain; charset=utf-8";

// Scrapes and probes are rare and quick; a few threads are plenty.
constexpr size_t kServingThreads = 4;

// "host:port", bracketing IPv6 literals.
std::string HostPort(const std::string& address, int port) {
  if (address.find(':') != std::string::npos) {
    return absl::StrCat("[", address, "]:", port);
  }
  return absl::StrCat(address, ":", port);
}

}  // namespace

MetricsHttpServer::MetricsHttpServer(const Registry* registry,
                                     ReadinessCheck readiness)
    : registry_(registry), readiness_(std::move(readiness)) {}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

absl::Status MetricsHttpServer::Start(const std::string& address, int port) {
  absl::MutexLock lock(&mu_);
  if (server_ != nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("metrics server is already serving on port ", port_.load(),
                     "; cannot start it on ", HostPort(address, port)));
  }
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics server port must be in [0, 65535], got ", port));
  }

  auto server = std::make_unique<httplib::Server>();
  server->new_task_queue = [] {
    return new httplib::ThreadPool(kServingThreads);
  };
  // httplib's default sets SO_REUSEPORT, which lets a second process bind the
  // same port and silently split the scrapes; SO_REUSEADDR alone still allows
  // a quick restart over connections in TIME_WAIT.
  server->set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  // An idle keep-alive connection holds a pool thread and delays Stop() by up
  // to this long; Prometheus scrapes far less often anyway.
  server->set_keep_alive_timeout(1);

  server->Get(
      "/metrics", [this](const httplib::Request&, httplib::Response& response) {
        response.set_content(registry_->Exposition(), kExpositionContentType);
      });
  server->Get("/healthz",
              [](const httplib::Request&, httplib::Response& response) {
                response.set_content("ok\n", kTextContentType);
              });
  server->Get(
      "/readyz", [this](const httplib::Request&, httplib::Response& response) {
        const absl::Status ready = readiness_ ? readiness_() : absl::OkStatus();
        if (ready.ok()) {
          response.set_content("ok\n", kTextContentType);
        } else {
          response.status = 503;
          response.set_content(absl::StrCat(ready.ToString(), "\n"),
                               kTextContentType);
        }
      });

  errno = 0;
  int bound = -1;
  if (port == 0) {
    bound = server->bind_to_any_port(address);
  } else if (server->bind_to_port(address, port)) {
    bound = port;
  }
  if (bound <= 0) {
    const int error = errno;
    return absl::UnavailableError(absl::StrCat(
        "metrics server cannot listen on ", HostPort(address, port),
        error != 0 ? absl::StrCat(": ", std::strerror(error))
                   : std::string(": address not resolvable or not local")));
  }

  // The socket already listens, so connections queue from here on. Wait for
  // the accept loop too: httplib's stop() does nothing before it runs, and
  // a Stop() right after Start() would then never return.
  auto finished = std::make_shared<std::atomic<bool>>(false);
  httplib::Server* raw = server.get();
  std::thread thread([raw, finished] {
    raw->listen_after_bind();
    finished->store(true);
  });
  while (!raw->is_running() && !finished->load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!raw->is_running()) {
    thread.join();
    return absl::InternalError(absl::StrCat(
        "metrics server on ", HostPort(address, bound), " stopped at once"));
  }
  server_ = std::move(server);
  thread_ = std::move(thread);
  port_.store(bound, std::memory_order_release);
  return absl::OkStatus();
}

void MetricsHttpServer::Stop() {
  absl::MutexLock lock(&mu_);
  if (server_ == nullptr) return;
  server_->stop();
  thread_.join();
  server_.reset();
  port_.store(0, std::memory_order_release);
}

}  // namespace lora::metrics
