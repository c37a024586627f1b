// The MPI backend: ranks started by mpirun or srun, tensors in host memory. Data-plane and
// control-plane collectives are the same blocking MPI calls (MPI_Allreduce and friends on
// MPI_COMM_WORLD; counts above 2^31 - 1 elements are split). Also the host channel of the NCCL
// backend, which needs MPI to share its unique id and for control-plane collectives.
//
// MPI is initialised once per process (MPI_THREAD_MULTIPLE requested, so that the NCCL watchdog
// thread may call MPI_Abort) and finalised by finalize() or at normal process exit. A rank that
// fails alone must call abort(): MPI_Finalize waits for every rank and would hang (run_guard.h).
#pragma once

#include <cstddef>
#include <string>

#include "parallel/communicator.h"
#include "parallel/launch.h"

namespace lnfree::parallel {

class MpiCommunicator : public Communicator {
 public:
  // Initialises MPI and checks its world against `launch`: a launcher that reports N ranks while
  // MPI sees another number (for example srun without a PMI plugin) is an error that says how to
  // launch instead.
  explicit MpiCommunicator(const LaunchInfo& launch);

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string backend() const override { return "mpi"; }
  Memory memory() const override { return Memory::kHost; }

  void allreduce(void* data, std::size_t count, DataType type, Reduction op, void* stream = nullptr) override;
  void broadcast(void* data, std::size_t count, DataType type, int root, void* stream = nullptr) override;
  void allgather(const void* send, void* recv, std::size_t count, DataType type,
                 void* stream = nullptr) override;

  void host_allreduce(void* data, std::size_t count, DataType type, Reduction op) override;
  void host_broadcast(void* data, std::size_t bytes, int root) override;
  void host_allgather(const void* send, void* recv, std::size_t bytes) override;
  void barrier() override;
  [[noreturn]] void abort(int exit_code, const std::string& reason) override;
  void finalize() override;

  using Communicator::host_allgather;
  using Communicator::host_allreduce;

  // Host name of this rank (MPI_Get_processor_name), for messages.
  const std::string& host() const { return host_; }

 private:
  int rank_ = 0, world_ = 1, local_rank_ = 0, local_size_ = 1;
  std::string host_;
};

}  // namespace lnfree::parallel
