// loractl's connection to lorad: one gRPC channel to SweepService, the
// bearer token on every call, a deadline on every unary call, and errors as
// absl::Status with the gRPC code kept and a message that says which call
// failed and, for the common cases, what to do about it.
//
// Thread safety: the methods may be called from several threads at once
// (gRPC stubs are thread-safe).
#ifndef LORA_SWEEP_LORACTL_CLIENT_H_
#define LORA_SWEEP_LORACTL_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lora/v1/sweep_service.grpc.pb.h"

namespace lora::loractl {

struct ClientOptions {
  std::string server;  // host:port, or any gRPC target
  std::string token;   // "" = no authorization metadata
  // Deadline of each unary call.
  absl::Duration call_timeout = absl::Seconds(30);
};

class LoradClient {
 public:
  // Creates the channel; it connects on the first call. The channel
  // reconnects quickly (backoff capped at 1 s) so that a watch resumes soon
  // after a restarted lorad listens again.
  static std::unique_ptr<LoradClient> Create(const ClientOptions& options);

  absl::StatusOr<v1::SubmitSweepResponse> SubmitSweep(
      const v1::SubmitSweepRequest& request);
  absl::StatusOr<v1::Sweep> GetSweep(const std::string& sweep_id);
  // Every sweep (all pages), newest first.
  absl::StatusOr<std::vector<v1::Sweep>> ListSweeps();
  // Every run of a sweep in sweep order (all pages), optionally only
  // those in `states`.
  absl::StatusOr<std::vector<v1::Run>> ListRuns(
      const std::string& sweep_id, const std::vector<v1::RunState>& states);
  absl::StatusOr<v1::Run> GetRun(const std::string& run_id);
  absl::StatusOr<v1::Sweep> CancelSweep(const std::string& sweep_id);
  absl::StatusOr<v1::Run> CancelRun(const std::string& run_id);
  absl::StatusOr<v1::GetResultsResponse> GetResults(
      const std::string& sweep_id, const std::string& group_by);
  absl::StatusOr<std::vector<v1::Worker>> ListWorkers(bool include_down);
  absl::StatusOr<v1::Artifact> GetArtifact(const std::string& artifact_id);
  // Every artifact (all pages), optionally of one kind or run.
  absl::StatusOr<std::vector<v1::Artifact>> ListArtifacts(
      v1::ArtifactKind kind, const std::string& run_id);

  // For streaming calls: a context with the token and, when `timeout` is
  // finite, a deadline.
  std::unique_ptr<grpc::ClientContext> NewContext(
      absl::Duration timeout = absl::InfiniteDuration()) const;
  v1::SweepService::Stub* stub() { return stub_.get(); }
  const std::string& server() const { return options_.server; }
  absl::Duration call_timeout() const { return options_.call_timeout; }

  // `status` of call `method` as an absl::Status with the same code and a
  // message "<method>: <CODE>: <details>" plus a hint for UNAVAILABLE,
  // UNAUTHENTICATED, PERMISSION_DENIED and DEADLINE_EXCEEDED. OK stays OK.
  absl::Status Explain(const std::string& method,
                       const grpc::Status& status) const;

 private:
  LoradClient(const ClientOptions& options,
              std::shared_ptr<grpc::Channel> channel);

  // One unary SweepService call with the token and the call timeout; a
  // failure is explained with `name` (see Explain in client.cc).
  template <typename Request, typename Response>
  absl::StatusOr<Response> Unary(
      const char* name,
      grpc::Status (v1::SweepService::Stub::*method)(grpc::ClientContext*,
                                                     const Request&, Response*),
      const Request& request);

  const ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::SweepService::Stub> stub_;
};

}  // namespace lora::loractl

#endif  // LORA_SWEEP_LORACTL_CLIENT_H_
