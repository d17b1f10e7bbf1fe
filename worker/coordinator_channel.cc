#include "worker/coordinator_channel.h"

#include <grpcpp/security/credentials.h>

#include <utility>

#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/status_macros.h"

namespace lora::worker {

absl::StatusOr<std::unique_ptr<CoordinatorChannel>> CoordinatorChannel::Create(
    const ChannelOptions& options) {
  if (options.address.empty()) {
    return absl::InvalidArgumentError("the coordinator address is empty");
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.tls_ca_file.empty()) {
    if (!options.tls_cert_file.empty() || !options.tls_key_file.empty()) {
      return absl::InvalidArgumentError(
          "a client certificate needs the coordinator's CA (TLS) too");
    }
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    LORA_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadFile(options.tls_ca_file));
    if (!options.tls_cert_file.empty() || !options.tls_key_file.empty()) {
      LORA_ASSIGN_OR_RETURN(ssl.pem_cert_chain,
                            ReadFile(options.tls_cert_file));
      LORA_ASSIGN_OR_RETURN(ssl.pem_private_key,
                            ReadFile(options.tls_key_file));
    }
    credentials = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments arguments;
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  arguments.SetMaxReceiveMessageSize(8 << 20);
  // Reconnect quickly after a coordinator restart.
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(options.address, credentials, arguments);
  return std::unique_ptr<CoordinatorChannel>(
      new CoordinatorChannel(std::move(channel), options.token));
}

CoordinatorChannel::CoordinatorChannel(std::shared_ptr<grpc::Channel> channel,
                                       std::string token)
    : channel_(std::move(channel)),
      stub_(v1::WorkerService::NewStub(channel_)),
      token_(std::move(token)) {}

std::unique_ptr<grpc::ClientContext> CoordinatorChannel::NewContext(
    absl::Duration timeout) const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!token_.empty()) {
    context->AddMetadata("authorization", "Bearer " + token_);
  }
  if (timeout != absl::InfiniteDuration()) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }
  return context;
}

}  // namespace lora::worker
