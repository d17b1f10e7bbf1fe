// The coordinator's gRPC services (callback API): SweepService for users and
// WorkerService for workers, on top of Coordinator (coordinator.h) and the
// artifact store. Nothing here blocks a gRPC thread for long: unary calls do
// one store step; AcquireJob long-polls and WatchSweep streams are served by
// the services' own dispatcher thread.
//
// WatchSweep reads events from the store (never from an unbounded queue): each
// watcher has one write in flight and a buffer of at most
// `watch_buffer_events`. The backlog that existed when a watch began is
// replayed at the client's pace; a watcher that lets more than
// `watch_max_lag_events` newer events pile up unsent (checked between
// writes) is ended with RESOURCE_EXHAUSTED and resumes from the last
// sequence it saw.
#ifndef LORA_SWEEP_COORDINATOR_GRPC_SERVICES_H_
#define LORA_SWEEP_COORDINATOR_GRPC_SERVICES_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "coordinator/artifact_store.h"
#include "coordinator/coordinator.h"
#include "lora/v1/sweep_service.grpc.pb.h"
#include "lora/v1/worker_service.grpc.pb.h"

namespace lora::coordinator {

// Which API a call belongs to, for authorisation.
enum class ApiKind { kSweepService, kWorkerService };

struct ServiceOptions {
  int64_t max_page_size = 1000;
  int64_t default_page_size = 50;
  int64_t max_acquire_wait_ms = 60000;
  int64_t watch_buffer_events = 256;
  int64_t watch_max_lag_events = 1000000;
  int64_t max_watchers = 1000;
  // Checks the `authorization` metadata of a call (empty when absent):
  // Unauthenticated or PermissionDenied to refuse it. Null = no auth.
  std::function<absl::Status(const std::string& authorization, ApiKind api)>
      authorize;
  // Called with the latency of each lease handed out (dispatch latency) and
  // per stored progress batch; null = not measured.
  std::function<void(double seconds)> observe_dispatch;
  std::function<void(int64_t points)> count_ingested;
};

class DispatchLoop;

// Owns both services and the dispatcher thread. Register the services with a
// grpc::ServerBuilder, start the server, then Start(); call Shutdown() before
// shutting the server down.
class CoordinatorServices {
 public:
  CoordinatorServices(Coordinator* coordinator, ArtifactStore* artifacts,
                      ServiceOptions options);
  ~CoordinatorServices();

  v1::SweepService::CallbackService* sweep_service();
  v1::WorkerService::CallbackService* worker_service();

  void Start();
  // Ends pending long-polls and watches with UNAVAILABLE and stops the
  // dispatcher thread.
  void Shutdown();

 private:
  class SweepServiceImpl;
  class WorkerServiceImpl;

  Coordinator* const coordinator_;
  ArtifactStore* const artifacts_;
  const ServiceOptions options_;
  std::unique_ptr<DispatchLoop> dispatch_;
  std::unique_ptr<SweepServiceImpl> sweep_;
  std::unique_ptr<WorkerServiceImpl> worker_;
};

}  // namespace lora::coordinator

#endif  // LORA_SWEEP_COORDINATOR_GRPC_SERVICES_H_
