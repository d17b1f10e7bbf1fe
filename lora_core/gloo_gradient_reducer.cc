#include "lora_core/gloo_gradient_reducer.h"

#include <c10/util/Exception.h>

#include <exception>
#include <string>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace lora::core {

struct GlooGradientReducer::Group {
  c10::intrusive_ptr<::c10d::Store> store;
  c10::intrusive_ptr<::c10d::ProcessGroupGloo> process_group;
};

namespace {

bool IsLoopback(const std::string& host) {
  return absl::StartsWith(host, "127.") || host == "localhost" || host == "::1";
}

// c10::Error's what() carries a C++ backtrace; users need the message.
std::string Describe(const std::exception& error) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&error)) {
    return c10_error->what_without_backtrace();
  }
  return error.what();
}

}  // namespace

absl::StatusOr<std::unique_ptr<GlooGradientReducer>> GlooGradientReducer::Open(
    const DistributedOptions& options, const Timeouts& timeouts) {
  if (options.world_size < 1 || options.rank < 0 ||
      options.rank >= options.world_size || options.master_port < 1 ||
      options.master_port > 65535 || options.master_addr.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Gloo process group: rank ", options.rank, " of world_size ",
        options.world_size, " at \"", options.master_addr, ":",
        options.master_port, "\" is out of range"));
  }
  auto group = std::make_unique<Group>();
  try {
    ::c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(options.master_port);
    store_options.isServer = options.rank == 0;
    store_options.numWorkers = static_cast<size_t>(options.world_size);
    store_options.waitWorkers = true;
    store_options.timeout = timeouts.rendezvous;
    group->store = c10::make_intrusive<::c10d::TCPStore>(options.master_addr,
                                                         store_options);
    auto group_options =
        ::c10d::ProcessGroupGloo::Options::create(timeouts.collective);
    group_options->devices.push_back(
        IsLoopback(options.master_addr)
            ? ::c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
            : ::c10d::ProcessGroupGloo::createDefaultDevice());
    group->process_group = c10::make_intrusive<::c10d::ProcessGroupGloo>(
        group->store, options.rank, options.world_size, group_options);
  } catch (const std::exception& error) {
    return absl::UnavailableError(
        absl::StrCat("rank ", options.rank, " of ", options.world_size,
                     ": rendezvous through ", options.master_addr, ":",
                     options.master_port, " failed: ", Describe(error)));
  }
  return std::unique_ptr<GlooGradientReducer>(new GlooGradientReducer(
      options.rank, options.world_size, std::move(group)));
}

GlooGradientReducer::GlooGradientReducer(int rank, int world_size,
                                         std::unique_ptr<Group> group)
    : rank_(rank), world_size_(world_size), group_(std::move(group)) {}

GlooGradientReducer::~GlooGradientReducer() = default;

absl::Status GlooGradientReducer::AllReduceSum(at::Tensor& tensor) {
  try {
    std::vector<at::Tensor> tensors = {tensor};
    group_->process_group->allreduce(tensors)->wait();
  } catch (const std::exception& error) {
    return absl::UnavailableError(
        absl::StrCat("rank ", rank_, " of ", world_size_,
                     ": all-reduce failed: ", Describe(error)));
  }
  return absl::OkStatus();
}

absl::Status GlooGradientReducer::Broadcast(at::Tensor& tensor) {
  try {
    std::vector<at::Tensor> tensors = {tensor};
    group_->process_group->broadcast(tensors)->wait();
  } catch (const std::exception& error) {
    return absl::UnavailableError(
        absl::StrCat("rank ", rank_, " of ", world_size_,
                     ": broadcast failed: ", Describe(error)));
  }
  return absl::OkStatus();
}

}  // namespace lora::core
