// LibTorch tensors over a Communicator's data plane. A tensor must be contiguous and live where
// comm.memory() says (CPU for the host backends, CUDA for NCCL). On CUDA a collective is ordered
// after the work queued on the tensor's current stream, and that stream waits for it, so the result
// is ready for the torch ops that follow. With a world of one rank nothing is communicated.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "parallel/communicator.h"

namespace lnfree::parallel {

DataType data_type_of(const torch::Tensor& tensor);
// The cudaStream_t of the tensor's device that torch is using now, or null (CPU tensor, or a
// LibTorch without CUDA).
void* current_stream(const torch::Tensor& tensor);

void allreduce(Communicator& comm, torch::Tensor& tensor, Reduction op);
void broadcast(Communicator& comm, torch::Tensor& tensor, int root);
// [world_size, *tensor.shape]: row r is rank r's tensor.
torch::Tensor allgather(Communicator& comm, const torch::Tensor& tensor);

// Copies rank 0's parameters and buffers into every rank's module.
void broadcast_module_state(Communicator& comm, torch::nn::Module& module);

// A bitwise checksum of each tensor (the sum of its elements' bit patterns as integers, int64 on
// the tensors' device): any single changed bit changes it.
torch::Tensor bit_checksums(const std::vector<torch::Tensor>& tensors);

// Compares bit_checksums of `named` across ranks; when any rank differs from rank 0, every rank
// throws the same CollectiveError naming the first differing tensor and ranks (after `step`).
void check_identical(Communicator& comm, const std::vector<std::pair<std::string, torch::Tensor>>& named,
                     std::int64_t step);

}  // namespace lnfree::parallel
