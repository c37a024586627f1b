// The NCCL backend: one GPU per rank, data-plane collectives on CUDA memory through NCCL on a
// dedicated communication stream, control-plane collectives over MPI.
//
// Start-up: every rank chooses its GPU (cuda_device.h: device local_rank when the rank sees the
// node's GPUs, device 0 when it sees only its own; all ranks agree before any of them fails), checks
// that no two ranks of a node share a GPU, and rank 0's ncclUniqueId is broadcast over MPI before
// ncclCommInitRank.
//
// Failure: a watchdog (collective_watchdog.h) aborts the job (reason logged, ncclCommAbort, then
// MPI_Abort) when a collective stays unfinished for longer than `timeout_s`, when a host-side NCCL
// call blocks for that long (a peer that never joined, a shutdown that hangs), or when NCCL reports
// an asynchronous error. Shutdown (finalize or destruction) synchronises, runs ncclCommFinalize and
// destroys the communicator while the watchdog still watches.
//
// Built only when CUDA and NCCL are found (CMake option LNFREE_WITH_NCCL); the code talks to raw
// device pointers and cudaStream_t, so it compiles without a CUDA-enabled LibTorch.
#pragma once

#include <memory>

#include "parallel/communicator.h"
#include "parallel/mpi_communicator.h"

namespace lnfree::parallel {

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<MpiCommunicator> host, double timeout_s);

}  // namespace lnfree::parallel
