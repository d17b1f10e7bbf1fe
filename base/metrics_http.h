// The HTTP endpoint Prometheus scrapes, plus liveness and readiness probes:
//
//   GET /metrics  200, the registry's exposition, Content-Type
//                 "text/plain; version=0.0.4; charset=utf-8"
//   GET /healthz  200 "ok" while the process serves at all
//   GET /readyz   200 "ok" when the readiness check returns OK; 503 with the
//                 status (code and message) otherwise
//
//   metrics::MetricsHttpServer server(&registry, [&store] {
//     return store.Ping();
//   });
//   LORA_RETURN_IF_ERROR(server.Start("127.0.0.1", 9464));
//
// Built on cpp-httplib; its header stays out of this one.
#ifndef LORA_SWEEP_BASE_METRICS_HTTP_H_
#define LORA_SWEEP_BASE_METRICS_HTTP_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "base/metrics.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace lora::metrics {

// Thread-safe. Requests are served by a small pool of threads owned by the
// server; the registry and the readiness check are called from those
// threads, concurrently with each other and with the rest of the process.
class MetricsHttpServer {
 public:
  // Returns OK when the process is ready for traffic, or why it is not.
  using ReadinessCheck = std::function<absl::Status()>;

  // `registry` is not owned and must outlive the server. A null `readiness`
  // means always ready.
  explicit MetricsHttpServer(const Registry* registry,
                             ReadinessCheck readiness = nullptr);
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // Stops serving (see Stop()).
  ~MetricsHttpServer();

  // Binds `address`:`port` (an IPv4 or IPv6 literal or a host name; port 0
  // picks a free port, see port()) and serves from a background thread. The
  // socket is listening when this returns. The port is bound exclusively
  // (no SO_REUSEPORT), so a second process cannot share it.
  //
  // Unavailable if the address cannot be bound (in use, not local, not
  // resolvable), with the address and the system error; InvalidArgument for
  // a port outside [0, 65535]; FailedPrecondition if already serving.
  // Start() after Stop() serves again.
  absl::Status Start(const std::string& address, int port);

  // Stops accepting, waits for requests in progress to finish and for the
  // serving thread to exit. After it returns no handler runs. A no-op when
  // not serving.
  void Stop();

  // The bound port while serving, else 0.
  int port() const { return port_.load(std::memory_order_acquire); }

 private:
  const Registry* const registry_;
  const ReadinessCheck readiness_;
  std::atomic<int> port_{0};

  absl::Mutex mu_;
  std::unique_ptr<httplib::Server> server_ ABSL_GUARDED_BY(mu_);
  std::thread thread_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lora::metrics

#endif  // LORA_SWEEP_BASE_METRICS_HTTP_H_
