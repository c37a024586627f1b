// What a training run reports: the run log it writes (its spec: root attributes, eval sets, σ
// columns), the σ rows, the held-out evaluations, throughput and ETA, and the step line. Rank 0
// alone writes run.h5; every rank takes part in the averages over the ranks.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "log/run_log.h"
#include "train/step_metrics.h"
#include "train/training_setup.h"

namespace lnfree::train {

// The columns of /ln/sigma: every LN's main-path σ, plus ln_1's V-path σ as "<name>.v".
class SigmaColumns {
 public:
  explicit SigmaColumns(model::Gpt2& model);
  const std::vector<std::string>& names() const { return names_; }
  // Each column's σ, on the device (0-d each).
  std::vector<torch::Tensor> values() const;
  // Whether each column's path is fake now.
  std::vector<runlog::LnPathState> states() const;

 private:
  std::vector<std::string> names_;
  std::vector<std::pair<model::LayerNorm, model::LnPath>> sources_;
};

// The run log's spec: the resolved config and its hash, the model's shape and parameter counts, the
// batch geometry, the planned removal window (analysis/ reads it instead of the schedule), the eval
// sets and the σ columns.
runlog::RunLogSpec run_log_spec(const TrainingSetup& run, const SigmaColumns& columns);
// Rank 0: creates run.h5, or reopens it without the rows from the resumed step on; others: nothing.
void open_run_log(const TrainingSetup& run, const runlog::RunLogSpec& spec,
                  std::optional<runlog::RunLog>& log);

// Tokens per second since the last log step, and the ETA of the steps left at the rate since start.
class Throughput {
 public:
  explicit Throughput(std::int64_t start_step);
  void add_tokens(std::int64_t tokens) { interval_tokens_ += tokens; }
  // The log-step fields after `done` steps of `steps`; starts the next interval.
  std::pair<double, double> tokens_per_s_and_eta(std::int64_t done, std::int64_t steps);
  // After a rollback: the interval starts again.
  void restart_interval();

 private:
  using Clock = std::chrono::steady_clock;
  std::int64_t start_step_;
  Clock::time_point run_start_, interval_start_;
  std::int64_t interval_tokens_ = 0;
};

// "1h05m" or "4m09s".
std::string format_eta(double seconds);

// One log row: losses averaged over the ranks (the gradient norm is already the same on every
// rank), appended to run.h5 with the σ of that step (rank 0), and the step line.
void report_step(const TrainingSetup& run, const StepMetrics::Row& row, runlog::RunLog* log);

// Evaluates the interval sets (`final_pass`: the final sets, every window, in fp32) after step
// `step_done`; each rank evaluates its block of the windows and the sums are combined. Eval rows
// carry the index of the last completed step, like train rows.
void evaluate_sets(TrainingSetup& run, std::int64_t step_done, bool final_pass, runlog::RunLog* log);

}  // namespace lnfree::train
