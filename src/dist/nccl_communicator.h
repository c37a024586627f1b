// The NCCL backend: one GPU per rank (the rank's local rank), data-plane collectives on CUDA memory
// through NCCL on a dedicated communication stream, control-plane collectives over MPI.
//
// Start-up: every rank checks that its node has at least as many visible GPUs as ranks (all ranks
// agree before any of them fails), selects device `local_rank`, and rank 0's ncclUniqueId is
// broadcast over MPI before ncclCommInitRank.
//
// Failure: a watchdog thread aborts the job (ncclCommAbort, then MPI_Abort) when a collective stays
// unfinished for longer than `timeout_s`, when a host-side NCCL call blocks for that long (a peer
// that never joined), or when NCCL reports an asynchronous error. Without it a dead peer would
// leave every other rank waiting forever on the GPU.
//
// Built only when CUDA and NCCL are found (CMake option LNFREE_WITH_NCCL); the code talks to raw
// device pointers and cudaStream_t, so it compiles without a CUDA-enabled LibTorch.
#pragma once

#include <memory>

#include "dist/communicator.h"
#include "dist/mpi_communicator.h"

namespace lnfree::dist {

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<MpiCommunicator> host, double timeout_s);

}  // namespace lnfree::dist
