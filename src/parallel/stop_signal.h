// Preemption: SIGUSR1, SIGTERM or SIGINT (Ctrl-C) asks a training job to write a checkpoint at the
// next step boundary and exit with kPreemptedExitCode; a second signal ends the process at once
// (the signal's default action), so that a batch script can requeue it and resume. SLURM sends
// the signal ahead of the time limit with `#SBATCH --signal=B:USR1@<seconds>` (slurm/train.sbatch);
// mpirun forwards SIGUSR1 and SIGTERM to its ranks.
//
// The handler only sets a flag. Ranks may see the signal at different moments, so the trainer
// combines the flags of all ranks (StopAgreement, a max over the ranks): all stop at the same step.
#pragma once

#include <csignal>
#include <cstdint>

#include "parallel/communicator.h"

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

// The stop decision of a run's ranks: a signal counts on every rank once any rank has it, so that
// all stop after the same step. A one-process world reads its flag after every step; several ranks
// agree every `every` steps, because a blocking host collective after every step would hold each
// rank's host in lockstep with the slowest one's (a preempted run then stops at most every-1 steps
// later than it could).
class StopAgreement {
 public:
  StopAgreement(Communicator& comm, const StopSignal& signal, std::int64_t every);
  // The signal agreed on after `done` steps, or 0: every rank gets the same answer.
  int after_step(std::int64_t done);

 private:
  Communicator& comm_;
  const StopSignal& signal_;
  std::int64_t every_;
};

}  // namespace lnfree::parallel
