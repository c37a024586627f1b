// The communicator of a process started without a launcher: world size 1, no MPI. Reductions over
// one rank leave the data as it is; gathers copy (host memory only).
#pragma once

#include <cstddef>
#include <string>

#include "parallel/communicator.h"

namespace lnfree::parallel {

class SingleCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  std::string backend() const override { return "single"; }
  Memory memory() const override { return Memory::kHost; }

  void allreduce(void*, std::size_t, DataType, Reduction, void*) override {}
  void broadcast(void*, std::size_t, DataType, int root, void*) override;
  void allgather(const void* send, void* recv, std::size_t count, DataType type, void*) override;

  void host_allreduce(void*, std::size_t, DataType, Reduction) override {}
  void host_broadcast(void*, std::size_t, int root) override;
  void host_allgather(const void* send, void* recv, std::size_t bytes) override;
  void barrier() override {}
  [[noreturn]] void abort(int exit_code, const std::string& reason) override;
  void finalize() override {}

  using Communicator::host_allgather;
  using Communicator::host_allreduce;
};

}  // namespace lnfree::parallel
