#include "loractl/client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/grpc_status.h"
#include "base/status_macros.h"

namespace lora::loractl {
namespace {

// GetResults of a large sweep can exceed gRPC's 4 MiB default.
constexpr int kMaxReceiveBytes = 64 << 20;
constexpr int kPageSize = 1000;

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

}  // namespace

std::unique_ptr<LoradClient> LoradClient::Create(const ClientOptions& options) {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  // Reconnect soon after lorad comes back (gRPC's default backoff grows to
  // 120 s), so a watch resumes within a second or two of a restart.
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  arguments.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      options.server, grpc::InsecureChannelCredentials(), arguments);
  return std::unique_ptr<LoradClient>(
      new LoradClient(options, std::move(channel)));
}

LoradClient::LoradClient(const ClientOptions& options,
                         std::shared_ptr<grpc::Channel> channel)
    : options_(options),
      channel_(std::move(channel)),
      stub_(v1::SweepService::NewStub(channel_)) {}

std::unique_ptr<grpc::ClientContext> LoradClient::NewContext(
    absl::Duration timeout) const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!options_.token.empty()) {
    context->AddMetadata("authorization",
                         absl::StrCat("Bearer ", options_.token));
  }
  if (timeout != absl::InfiniteDuration()) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }
  return context;
}

absl::Status LoradClient::Explain(const std::string& method,
                                  const grpc::Status& status) const {
  if (status.ok()) return absl::OkStatus();
  std::string message =
      absl::StrCat(method, ": ", CodeName(status.error_code()), ": ",
                   status.error_message());
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      absl::StrAppend(&message, " (is lorad running and listening on ",
                      options_.server,
                      "? set --server, $LORACTL_SERVER or `server:` in the "
                      "config file)");
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
      absl::StrAppend(&message,
                      " (set a client token in $LORACTL_TOKEN or `token:` in "
                      "the config file)");
      break;
    case grpc::StatusCode::PERMISSION_DENIED:
      absl::StrAppend(&message,
                      " (the token's role may not call SweepService; use a "
                      "client or admin token)");
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      absl::StrAppend(&message,
                      " (no answer within the deadline; see "
                      "--request-timeout)");
      break;
    default:
      break;
  }
  return absl::Status(FromGrpcStatus(status).code(), message);
}

template <typename Request, typename Response>
absl::StatusOr<Response> LoradClient::Unary(
    const char* name,
    grpc::Status (v1::SweepService::Stub::*method)(grpc::ClientContext*,
                                                   const Request&, Response*),
    const Request& request) {
  auto context = NewContext(options_.call_timeout);
  Response response;
  grpc::Status status =
      (stub_.get()->*method)(context.get(), request, &response);
  if (!status.ok()) return Explain(name, status);
  return response;
}

absl::StatusOr<v1::SubmitSweepResponse> LoradClient::SubmitSweep(
    const v1::SubmitSweepRequest& request) {
  return Unary("SubmitSweep", &v1::SweepService::Stub::SubmitSweep, request);
}

absl::StatusOr<v1::Sweep> LoradClient::GetSweep(const std::string& sweep_id) {
  v1::GetSweepRequest request;
  request.set_sweep_id(sweep_id);
  return Unary("GetSweep", &v1::SweepService::Stub::GetSweep, request);
}

absl::StatusOr<std::vector<v1::Sweep>> LoradClient::ListSweeps() {
  std::vector<v1::Sweep> sweeps;
  v1::ListSweepsRequest request;
  request.set_page_size(kPageSize);
  while (true) {
    LORA_ASSIGN_OR_RETURN(
        v1::ListSweepsResponse response,
        Unary("ListSweeps", &v1::SweepService::Stub::ListSweeps, request));
    for (v1::Sweep& sweep : *response.mutable_sweeps()) {
      sweeps.push_back(std::move(sweep));
    }
    if (response.next_page_token().empty()) return sweeps;
    request.set_page_token(response.next_page_token());
  }
}

absl::StatusOr<std::vector<v1::Run>> LoradClient::ListRuns(
    const std::string& sweep_id, const std::vector<v1::RunState>& states) {
  std::vector<v1::Run> runs;
  v1::ListRunsRequest request;
  request.set_sweep_id(sweep_id);
  for (v1::RunState state : states) request.add_states(state);
  request.set_page_size(kPageSize);
  while (true) {
    LORA_ASSIGN_OR_RETURN(
        v1::ListRunsResponse response,
        Unary("ListRuns", &v1::SweepService::Stub::ListRuns, request));
    for (v1::Run& run : *response.mutable_runs())
      runs.push_back(std::move(run));
    if (response.next_page_token().empty()) return runs;
    request.set_page_token(response.next_page_token());
  }
}

absl::StatusOr<v1::Run> LoradClient::GetRun(const std::string& run_id) {
  v1::GetRunRequest request;
  request.set_run_id(run_id);
  return Unary("GetRun", &v1::SweepService::Stub::GetRun, request);
}

absl::StatusOr<v1::Sweep> LoradClient::CancelSweep(
    const std::string& sweep_id) {
  v1::CancelSweepRequest request;
  request.set_sweep_id(sweep_id);
  return Unary("CancelSweep", &v1::SweepService::Stub::CancelSweep, request);
}

absl::StatusOr<v1::Run> LoradClient::CancelRun(const std::string& run_id) {
  v1::CancelRunRequest request;
  request.set_run_id(run_id);
  return Unary("CancelRun", &v1::SweepService::Stub::CancelRun, request);
}

absl::StatusOr<v1::GetResultsResponse> LoradClient::GetResults(
    const std::string& sweep_id, const std::string& group_by) {
  v1::GetResultsRequest request;
  request.set_sweep_id(sweep_id);
  request.set_group_by(group_by);
  return Unary("GetResults", &v1::SweepService::Stub::GetResults, request);
}

absl::StatusOr<std::vector<v1::Worker>> LoradClient::ListWorkers(
    bool include_down) {
  auto context = NewContext(options_.call_timeout);
  v1::ListWorkersRequest request;
  request.set_include_down(include_down);
  v1::ListWorkersResponse response;
  grpc::Status status = stub_->ListWorkers(context.get(), request, &response);
  if (!status.ok()) return Explain("ListWorkers", status);
  return std::vector<v1::Worker>(response.workers().begin(),
                                 response.workers().end());
}

absl::StatusOr<v1::Artifact> LoradClient::GetArtifact(
    const std::string& artifact_id) {
  v1::GetArtifactRequest request;
  request.set_artifact_id(artifact_id);
  return Unary("GetArtifact", &v1::SweepService::Stub::GetArtifact, request);
}

absl::StatusOr<std::vector<v1::Artifact>> LoradClient::ListArtifacts(
    v1::ArtifactKind kind, const std::string& run_id) {
  std::vector<v1::Artifact> artifacts;
  v1::ListArtifactsRequest request;
  request.set_kind(kind);
  request.set_run_id(run_id);
  request.set_page_size(kPageSize);
  while (true) {
    auto context = NewContext(options_.call_timeout);
    v1::ListArtifactsResponse response;
    grpc::Status status =
        stub_->ListArtifacts(context.get(), request, &response);
    if (!status.ok()) return Explain("ListArtifacts", status);
    for (v1::Artifact& artifact : *response.mutable_artifacts()) {
      artifacts.push_back(std::move(artifact));
    }
    if (response.next_page_token().empty()) return artifacts;
    request.set_page_token(response.next_page_token());
  }
}

}  // namespace lora::loractl
