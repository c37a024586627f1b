// Which launcher started this process, and as which rank. Read from the environment before MPI is
// initialised (so that a process started without a launcher never touches MPI):
//
//   launcher   rank                   world size                              local rank
//   mpirun     OMPI_COMM_WORLD_RANK   OMPI_COMM_WORLD_SIZE                    OMPI_COMM_WORLD_LOCAL_RANK
//   srun       SLURM_PROCID           SLURM_STEP_NUM_TASKS (or SLURM_NTASKS)  SLURM_LOCALID
//   none       0                      1                                       0
//
// Open MPI's variables win when both are present (mpirun inside an allocation). SLURM's count only
// inside a job step (SLURM_STEP_ID set): a batch script itself is one process even when the job asks
// for many tasks. Once MPI is running, MPI's own rank, size and node-local rank are used and must
// agree with these (connect.h).
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace lnfree::parallel {

struct LaunchInfo {
  std::string launcher = "none";  // "none", "mpirun" or "srun"
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
};

using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// From `env`; throws lnfree::Error naming the variable when a value is not a valid number or the
// values contradict each other (rank outside [0, world size)).
LaunchInfo detect_launch(const EnvLookup& env);
// From the process environment.
LaunchInfo detect_launch();

}  // namespace lnfree::parallel
