// Averages gradients over the ranks in flat buckets (docs/distributed.md, "Gradient reduction").
//
// Buckets. Parameters are taken in reverse registration order (roughly the order in which backward
// finishes their gradients) and packed, per dtype, into buckets of at most `bucket_bytes` (a larger
// tensor gets a bucket of its own). Each parameter's .grad() becomes a view into its bucket, so
// backward accumulates straight into the flat buffer and a bucket is reduced by one collective in
// place, with no copies. The gradients are reduced only on the last micro-step of an accumulation:
// earlier micro-steps accumulate locally.
//
// Launch::kDuringBackward (GPUs): a post-hook on each parameter's gradient accumulator marks the
// parameter ready during the last backward; when every parameter of a bucket is ready and every
// lower bucket has been launched, the bucket's allreduce is enqueued on the communication stream,
// after the work queued so far on the backward's stream, so communication overlaps the rest of
// backward. Buckets launch in index order, identical on every rank, as collectives must.
// Launch::kAfterBackward (CPUs, MPI): finish() reduces the buckets one after another once backward
// has returned. MPI only progresses inside MPI calls and the cores are busy with backward, so there
// would be nothing to overlap.
//
// The average is the sum over ranks divided by the world size; with the loss of each micro-step
// divided by the local accumulation count, the result is the gradient of the global mean loss, the
// same as one process's up to float summation order (bitwise for powers of two on the CPU).
#pragma once

#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "parallel/communicator.h"

namespace lnfree::parallel {

class GradientReducer {
 public:
  enum class Launch { kAfterBackward, kDuringBackward };

  // `params` need gradients, must be contiguous and live where comm.memory() says. Their existing
  // gradients (if any) are copied into the buckets.
  GradientReducer(std::vector<torch::Tensor> params, Communicator& comm, std::int64_t bucket_bytes,
                  Launch launch);
  // The reducer of a training loop on `comm`, which then needs no world-size guards: the launch
  // follows the communicator's memory (during backward on CUDA, after it on the CPU), and a world
  // of one gets a reducer with no buckets whose arm() and finish() do nothing, so that gradients
  // stay where autograd puts them (bit for bit the run without data parallelism).
  static std::unique_ptr<GradientReducer> for_training(std::vector<torch::Tensor> params, Communicator& comm,
                                                       std::int64_t bucket_bytes);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // The next backward is the last micro-step of the accumulation (kDuringBackward: hooks launch).
  void arm();
  // After that backward: launches what has not been launched and waits (on CUDA: makes the current
  // stream wait). Every gradient then holds the average over the ranks.
  void finish();

  std::size_t bucket_count() const;
  // Elements of each bucket, in launch order.
  std::vector<std::int64_t> bucket_sizes() const;

 private:
  struct State;
  GradientReducer();  // no buckets: a world of one (for_training)
  std::shared_ptr<State> state_;
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, std::uintptr_t>> hooks_;
};

}  // namespace lnfree::parallel
