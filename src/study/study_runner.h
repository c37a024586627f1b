// Runs a study plan: up to `parallel` lnfree processes at once, each with its log file; jobs whose
// done marker exists are skipped, interrupted training runs are resumed (--resume); the costliest
// ready job starts first; a progress line with an ETA (from the FLOPs done per second so far)
// after every finished job and every 30 s. SIGINT/SIGTERM stop the running jobs and exit; a
// re-run continues. Returns the ids of jobs that failed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "study/study_plan.h"

namespace lnfree::study {

struct RunnerOptions {
  std::string lnfree_binary;  // the lnfree executable jobs run
  std::int64_t parallel = 2;
  std::int64_t threads_per_job = 1;  // OMP_NUM_THREADS of each job
};

std::vector<std::string> run_plan(const StudyPlan& plan, const RunnerOptions& options);

}  // namespace lnfree::study
