// The one conversion between absl::Status (used across module boundaries) and
// grpc::Status (used only at the service layer and in gRPC clients).
#ifndef LORA_SWEEP_BASE_GRPC_STATUS_H_
#define LORA_SWEEP_BASE_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace lora {

// Maps the canonical code one to one and keeps the message. OK maps to OK
// with an empty message.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The inverse of ToGrpcStatus, for clients that receive a grpc::Status.
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace lora

#endif  // LORA_SWEEP_BASE_GRPC_STATUS_H_
