// How a worker reaches the coordinator: one gRPC channel (plain or TLS) and
// the bearer token every call carries. Shared by the worker's parts
// (registration and heartbeats, job leasing, progress reporting, artifact
// transfer).
#ifndef LORA_SWEEP_WORKER_COORDINATOR_CHANNEL_H_
#define LORA_SWEEP_WORKER_COORDINATOR_CHANNEL_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lora/v1/worker_service.grpc.pb.h"

namespace lora::worker {

struct ChannelOptions {
  std::string address;  // host:port
  std::string token;    // "" = no authorization metadata
  // TLS: the CA that signed the coordinator's certificate ("" = plain
  // text); a client certificate and key for mutual TLS.
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
};

class CoordinatorChannel {
 public:
  // Reads the TLS files (errors name the file) and creates the channel; it
  // connects lazily.
  static absl::StatusOr<std::unique_ptr<CoordinatorChannel>> Create(
      const ChannelOptions& options);

  v1::WorkerService::Stub* stub() { return stub_.get(); }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

  // A context carrying the token and, if `timeout` is finite, a deadline.
  std::unique_ptr<grpc::ClientContext> NewContext(
      absl::Duration timeout = absl::InfiniteDuration()) const;

 private:
  CoordinatorChannel(std::shared_ptr<grpc::Channel> channel, std::string token);

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  const std::string token_;
};

}  // namespace lora::worker

#endif  // LORA_SWEEP_WORKER_COORDINATOR_CHANNEL_H_
