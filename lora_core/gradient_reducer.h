// The data-parallel seam: how the ranks of one training job combine
// tensors. The trainer makes the same calls on every rank, in the same
// order, with tensors of the same shape and dtype (they are collectives: a
// call returns once every rank has made it). One implementation per
// transport: NoOpGradientReducer (one process), GlooGradientReducer (CPU
// processes over TCP, gloo_gradient_reducer.h); an NCCL one for CUDA builds
// slots in beside them.
//
// Errors (a peer that died, a timeout) are returned, never thrown; after one,
// the job cannot continue and the caller should exit. Not thread-safe.
#ifndef LORA_SWEEP_LORA_CORE_GRADIENT_REDUCER_H_
#define LORA_SWEEP_LORA_CORE_GRADIENT_REDUCER_H_

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"

namespace lora::core {

class GradientReducer {
 public:
  virtual ~GradientReducer() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // Replaces `tensor`, in place, by its element-wise sum over the ranks.
  // `tensor` is a contiguous CPU tensor of float32, float64 or int64. Every
  // rank ends with bitwise identical values.
  virtual absl::Status AllReduceSum(at::Tensor& tensor) = 0;

  // Copies rank 0's `tensor` into every rank's, in place (same constraints).
  virtual absl::Status Broadcast(at::Tensor& tensor) = 0;
};

// One process: rank 0 of 1; both operations leave the tensor as it is.
class NoOpGradientReducer final : public GradientReducer {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  absl::Status AllReduceSum(at::Tensor&) override { return absl::OkStatus(); }
  absl::Status Broadcast(at::Tensor&) override { return absl::OkStatus(); }
};

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_GRADIENT_REDUCER_H_
