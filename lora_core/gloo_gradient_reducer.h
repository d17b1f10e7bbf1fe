// GradientReducer over c10d's ProcessGroupGloo, for data parallel training
// on CPU: rank 0 serves a c10d TCPStore at MASTER_ADDR:MASTER_PORT, every
// rank rendezvouses through it, and Gloo moves the tensors over TCP. The
// transport binds to 127.0.0.1 when MASTER_ADDR is a loopback address (the
// worker runs all ranks on one machine), otherwise to the address this
// host's name resolves to.
#ifndef LORA_SWEEP_LORA_CORE_GLOO_GRADIENT_REDUCER_H_
#define LORA_SWEEP_LORA_CORE_GLOO_GRADIENT_REDUCER_H_

#include <chrono>
#include <memory>

#include "absl/status/statusor.h"
#include "lora_core/distributed_env.h"
#include "lora_core/gradient_reducer.h"

namespace lora::core {

class GlooGradientReducer final : public GradientReducer {
 public:
  struct Timeouts {
    // How long a rank waits for all the others to join.
    std::chrono::milliseconds rendezvous = std::chrono::minutes(5);
    // How long one collective waits for the slowest rank (LibTorch's
    // default).
    std::chrono::milliseconds collective = std::chrono::minutes(30);
  };

  // Joins the job `options` describes; returns once every rank has joined.
  // Unavailable when the rendezvous fails or times out (naming the address
  // and the rank), InvalidArgument for options out of range.
  static absl::StatusOr<std::unique_ptr<GlooGradientReducer>> Open(
      const DistributedOptions& options, const Timeouts& timeouts);
  static absl::StatusOr<std::unique_ptr<GlooGradientReducer>> Open(
      const DistributedOptions& options) {
    return Open(options, Timeouts());
  }

  ~GlooGradientReducer() override;

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  absl::Status AllReduceSum(at::Tensor& tensor) override;
  absl::Status Broadcast(at::Tensor& tensor) override;

 private:
  struct Group;  // c10d's store and process group, kept out of this header
  GlooGradientReducer(int rank, int world_size, std::unique_ptr<Group> group);

  int rank_;
  int world_size_;
  std::unique_ptr<Group> group_;
};

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_GLOO_GRADIENT_REDUCER_H_
