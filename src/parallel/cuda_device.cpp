#include "parallel/cuda_device.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstddef>
#include <map>

namespace lnfree::parallel {

DeviceChoice choose_cuda_device(const std::string& host, int local_rank, int local_size, int visible,
                                const char* cuda_visible_devices) {
  const std::string variable = cuda_visible_devices ? cuda_visible_devices : "unset";
  if (visible < 1)
    return {-1, fmt::format("{}: no CUDA device is visible (CUDA_VISIBLE_DEVICES={})", host, variable)};
  if (visible >= local_size) return {local_rank, ""};
  if (visible == 1) return {0, ""};  // one GPU per rank: distinct or not, shared_devices() tells
  return {-1,
          fmt::format("{}: {} ranks were started on this node but this rank sees {} GPU(s) "
                      "(CUDA_VISIBLE_DEVICES={}); start at most {} rank(s) per node (mpirun --npernode "
                      "{}, srun --ntasks-per-node={}), or give each rank one GPU (srun --gpus-per-task=1)",
                      host, local_size, visible, variable, visible, visible, visible)};
}

std::string shared_devices(const std::vector<std::string>& devices) {
  std::map<std::string, std::vector<int>> ranks_of;
  for (std::size_t r = 0; r < devices.size(); ++r) ranks_of[devices[r]].push_back(static_cast<int>(r));
  std::string problem;
  for (const auto& [device, ranks] : ranks_of) {
    if (ranks.size() < 2) continue;
    problem += fmt::format("{}ranks {} share the GPU {}", problem.empty() ? "" : "; ", fmt::join(ranks, ", "),
                           device);
  }
  if (!problem.empty())
    problem +=
        " (NCCL needs one GPU per rank: give each rank its own CUDA_VISIBLE_DEVICES, use srun "
        "--gpus-per-task=1, or leave every GPU visible to every rank)";
  return problem;
}

}  // namespace lnfree::parallel
