#include "train/aux_target.h"

#include "model/aux_loss.h"
#include "parallel/tensor_collectives.h"

namespace lnfree::train {

void AuxTarget::record(const torch::Tensor& statistics) {
  pending_ = pending_.defined() ? pending_ + statistics : statistics.clone();
}

void AuxTarget::commit(parallel::Communicator& comm) {
  // Every rank records as many micro-batches per step, so either all have records or none has.
  if (!pending_.defined()) return;
  auto pooled = comm.world_size() == 1 ? pending_ : parallel::allgather(comm, pending_).sum(0);
  value_ = model::aux_target_from_statistics(pooled);
  pending_ = torch::Tensor();
}

std::optional<double> AuxTarget::checkpoint_value() const {
  if (!known()) return std::nullopt;
  return value_.item<float>();  // float -> double is exact: the restore gives the same fp32 value
}

void AuxTarget::restore(std::optional<double> value, const torch::Device& device) {
  pending_ = torch::Tensor();
  value_ = value ? torch::tensor(static_cast<float>(*value), torch::TensorOptions().device(device))
                 : torch::Tensor();
}

}  // namespace lnfree::train
