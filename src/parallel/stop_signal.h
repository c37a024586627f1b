// Preemption: SIGUSR1, SIGTERM or SIGINT (Ctrl-C) asks a training job to write a checkpoint at the
// next step boundary and exit with kPreemptedExitCode; a second signal ends the process at once
// (the signal's default action), so that a batch script can requeue it and resume. SLURM sends
// the signal ahead of the time limit with `#SBATCH --signal=B:USR1@<seconds>` (slurm/train.sbatch);
// mpirun forwards SIGUSR1 and SIGTERM to its ranks.
//
// The handler only sets a flag. Ranks may see the signal at different moments, so the trainer
// combines the flags of all ranks (a max over the ranks) once per step: all stop at the same step.
#pragma once

#include <csignal>

namespace lnfree::parallel {

// EX_TEMPFAIL of sysexits.h: "temporary failure, the user is invited to retry".
inline constexpr int kPreemptedExitCode = 75;

// Installs the handlers for as long as it lives and restores the previous ones afterwards.
// Instances nest: `lnfree train` installs one before any work (MPI start-up included) and the
// trainer its own; a signal received under the outer one is still seen by the inner one.
class StopSignal {
 public:
  StopSignal();
  ~StopSignal();
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  // The signal number received since the outermost installation, or 0.
  int received() const;

 private:
  struct sigaction previous_[3] = {};
};

}  // namespace lnfree::parallel
