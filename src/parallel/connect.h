// The communicator of this process, chosen from how the process was started (launch.h):
//   no launcher, or a world of one      SingleCommunicator (MPI is never touched)
//   mpirun / srun, device cpu           MpiCommunicator
//   mpirun / srun, device cuda          NcclCommunicator (needs a build with LNFREE_WITH_NCCL)
// Created on the first call and shared by later calls; MPI can be started only once per process.
#pragma once

#include <memory>
#include <optional>

#include "parallel/communicator.h"

namespace lnfree::parallel {

struct ConnectOptions {
  Memory memory = Memory::kHost;  // kCuda selects NCCL for multi-rank runs
  // NCCL watchdog limit in seconds; unset: the default of the run config's [dist] timeout_s.
  std::optional<double> timeout_s;
};

std::shared_ptr<Communicator> connect(const ConnectOptions& options = {});

// Whether this build has the MPI and NCCL backends.
bool built_with_mpi();
bool built_with_nccl();

}  // namespace lnfree::parallel
