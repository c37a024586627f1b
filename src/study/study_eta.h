// The study's ETA: how long the jobs still to run will take on `parallel` slots. Each job's
// duration is predicted as overhead + cost / rate, with the rate measured per model (jobs of one
// size run at one FLOP rate; small models run at a lower one than large ones) and the overhead
// (process start-up, data loading, short jobs) measured on every finished job; then the remaining
// jobs are list-scheduled in the runner's own order (dependencies, costliest first) onto the
// slots, the running ones first with what is left of their predicted time. A single FLOP rate
// times the remaining FLOPs, as before, ignored start-up, short jobs and the critical path, and
// printed "ETA ~0m51s" with 14 of 33 jobs left.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "study/study_plan.h"

namespace lnfree::study {

class EtaModel {
 public:
  // A job finished after `seconds` of wall time.
  void observe(const Job& job, double seconds);
  // Predicted wall time of a job, or nothing before any training job was measured.
  std::optional<double> predict(const Job& job) const;

  // Seconds until every job not in `done` has finished: `running` maps job ids to their elapsed
  // seconds; `priority` is the runner's queue order (higher first). Nothing before a measurement.
  std::optional<double> remaining(const StudyPlan& plan, const std::set<std::string>& done,
                                  const std::map<std::string, double>& running,
                                  const std::map<std::string, double>& priority, std::int64_t parallel) const;

 private:
  struct Rate {
    double cost = 0, seconds = 0;
  };
  std::map<std::string, Rate> per_model_;  // model name (id before the first '/') -> totals
  Rate all_;
  double overhead_sum_ = 0;
  std::size_t overhead_count_ = 0;
  double overhead() const;
};

// The model a job belongs to: its id up to the first '/'.
std::string job_model(const Job& job);

}  // namespace lnfree::study
