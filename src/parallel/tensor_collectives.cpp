#include "parallel/tensor_collectives.h"

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>

#if LNFREE_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace lnfree::parallel {
namespace {

void check_placement(const Communicator& comm, const torch::Tensor& t, const char* what) {
  if (!t.is_contiguous()) fail("{}: the tensor must be contiguous", what);
  const bool cuda = comm.memory() == Memory::kCuda;
  if (t.is_cuda() != cuda)
    fail("{}: the {} backend needs {} tensors, got one on {}", what, comm.backend(), cuda ? "CUDA" : "CPU",
         fmt::format("{}", t.device().str()));
}

}  // namespace

DataType data_type_of(const torch::Tensor& tensor) {
  switch (tensor.scalar_type()) {
    case torch::kFloat:
      return DataType::kFloat32;
    case torch::kDouble:
      return DataType::kFloat64;
    case torch::kBFloat16:
      return DataType::kBFloat16;
    case torch::kLong:
      return DataType::kInt64;
    case torch::kByte:
      return DataType::kUInt8;
    default:
      fail("collectives: tensors of type {} are not supported",
           fmt::format("{}", c10::toString(tensor.scalar_type())));
  }
}

void* current_stream(const torch::Tensor& tensor) {
#if LNFREE_TORCH_CUDA
  if (tensor.is_cuda()) return c10::cuda::getCurrentCUDAStream(tensor.device().index()).stream();
#else
  (void)tensor;
#endif
  return nullptr;
}

void allreduce(Communicator& comm, torch::Tensor& tensor, Reduction op) {
  if (comm.world_size() == 1) return;
  check_placement(comm, tensor, "allreduce");
  void* stream = current_stream(tensor);
  comm.allreduce(tensor.data_ptr(), static_cast<std::size_t>(tensor.numel()), data_type_of(tensor), op,
                 stream);
  comm.join(stream);
}

void broadcast(Communicator& comm, torch::Tensor& tensor, int root) {
  if (comm.world_size() == 1) return;
  check_placement(comm, tensor, "broadcast");
  void* stream = current_stream(tensor);
  comm.broadcast(tensor.data_ptr(), static_cast<std::size_t>(tensor.numel()), data_type_of(tensor), root,
                 stream);
  comm.join(stream);
}

torch::Tensor allgather(Communicator& comm, const torch::Tensor& tensor) {
  if (comm.world_size() == 1) return tensor.unsqueeze(0).clone();
  check_placement(comm, tensor, "allgather");
  std::vector<std::int64_t> shape{comm.world_size()};
  for (auto size : tensor.sizes()) shape.push_back(size);
  auto out = torch::empty(shape, tensor.options());
  void* stream = current_stream(tensor);
  comm.allgather(tensor.data_ptr(), out.data_ptr(), static_cast<std::size_t>(tensor.numel()),
                 data_type_of(tensor), stream);
  comm.join(stream);
  return out;
}

void broadcast_module_state(Communicator& comm, torch::nn::Module& module) {
  if (comm.world_size() == 1) return;
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    auto t = p.detach();
    broadcast(comm, t, 0);
  }
  for (auto& b : module.buffers()) broadcast(comm, b, 0);
}

torch::Tensor bit_checksums(const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> sums;
  for (const auto& t : tensors) {
    auto flat = t.detach().contiguous().reshape({-1});
    torch::ScalarType bits;
    switch (flat.element_size()) {
      case 1:
        bits = torch::kByte;
        break;
      case 2:
        bits = torch::kShort;
        break;
      case 4:
        bits = torch::kInt;
        break;
      default:
        bits = torch::kLong;
    }
    sums.push_back(flat.view(bits).to(torch::kLong).sum());
  }
  return torch::stack(sums);
}

void check_identical(Communicator& comm, const std::vector<std::pair<std::string, torch::Tensor>>& named,
                     std::int64_t step) {
  if (comm.world_size() == 1) return;
  std::vector<torch::Tensor> tensors;
  for (const auto& item : named) tensors.push_back(item.second);
  auto mine = bit_checksums(tensors).to(torch::kCPU).contiguous();
  const auto n = static_cast<std::size_t>(mine.numel());
  std::vector<std::int64_t> all(n * static_cast<std::size_t>(comm.world_size()));
  comm.host_allgather(mine.data_ptr<std::int64_t>(), all.data(), n * sizeof(std::int64_t));
  for (std::size_t r = 1; r < static_cast<std::size_t>(comm.world_size()); ++r)
    for (std::size_t i = 0; i < n; ++i)
      if (all[r * n + i] != all[i])
        throw CollectiveError(
            fmt::format("dist.check_weights: after step {}, parameter '{}' differs between rank 0 and rank "
                        "{} (bit checksums {} "
                        "vs {}): the ranks no longer hold the same model",
                        step, named[i].first, r, all[i], all[r * n + i]));
}

}  // namespace lnfree::parallel
