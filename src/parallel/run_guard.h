// How a rank ends. A job must never hang because one rank has gone:
//   * success, or a CollectiveError (every rank fails at the same point, e.g. a config that differs
//     between ranks): the ranks finalise together and the exception passes on;
//   * any other exception on one rank: it is logged with the rank and host, and the whole job is
//     aborted (MPI_Abort, exit code 1): the other ranks may be waiting in a collective;
//   * a rank that is killed: mpirun (or srun with --kill-on-bad-exit) ends the job; on GPUs the
//     NCCL watchdog also aborts ranks stuck in a collective (nccl_communicator.h).
#pragma once

#include <functional>
#include <string>

#include "parallel/communicator.h"

namespace lnfree::parallel {

// Runs `body` under the rules above and returns its exit code. Single-process runs just run it.
int run_or_abort(Communicator& comm, const std::function<int()>& body);

// Every rank checks that it runs the same config (hash), lnfree version and git commit as rank 0;
// otherwise every rank throws a CollectiveError naming the differing ranks and values.
void check_ranks_agree(Communicator& comm, const std::string& config_hash);

}  // namespace lnfree::parallel
