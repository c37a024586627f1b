// Which GPU a rank of the NCCL backend uses, and the check that no two ranks of a node share one.
// Plain functions (no CUDA) so that they are tested on the CPU (tests/parallel/cuda_device_test.cpp).
//
// Two launch styles are common and both must work:
//   - every rank of a node sees all of the node's GPUs (mpirun; srun --gpus-per-node): rank uses
//     device local_rank, and the node needs at least as many visible GPUs as ranks;
//   - every rank sees exactly one GPU (CUDA_VISIBLE_DEVICES set per rank; srun --gpus-per-task=1 or
//     --gpu-bind): device 0 on every rank. Whether these are really different GPUs shows only once
//     each rank names its device, hence shared_devices().
#pragma once

#include <string>
#include <vector>

namespace lnfree::parallel {

struct DeviceChoice {
  int device = -1;      // the CUDA device index to select; -1 with a problem
  std::string problem;  // empty when the choice is possible
};

// `visible`: the CUDA devices this process sees; `cuda_visible_devices`: the variable's value (for
// the message), or nullptr when unset.
DeviceChoice choose_cuda_device(const std::string& host, int local_rank, int local_size, int visible,
                                const char* cuda_visible_devices);

// `devices[r]`: rank r's host and device identity (e.g. "node1 0000:1b:00.0", a PCI bus id). Empty
// when all differ, otherwise a message naming the ranks that share a GPU and the fix.
std::string shared_devices(const std::vector<std::string>& devices);

}  // namespace lnfree::parallel
