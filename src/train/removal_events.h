// The removal schedule applied as the run goes (spec §3.1): the events of a step change the model's
// LayerNorms before the step's first micro-batch, are recorded in run.h5, and the newest few are
// kept for the message of a divergence (which usually follows one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <utility>

#include "config/removal_schedule.h"
#include "log/run_log.h"
#include "model/gpt2.h"

namespace lnfree::train {

// Turns the LayerNorm paths that `event` names fake, or ends their special divisors (eot, bos).
void apply_removal_event(model::Gpt2& model, const config::RemovalEvent& event);

class RemovalEvents {
 public:
  explicit RemovalEvents(config::RemovalSchedule schedule) : schedule_(std::move(schedule)) {}

  // Applies the events of `step` to `model`; `log` (rank 0's; null on the other ranks) records them
  // with the tokens consumed before the step.
  void apply_at(std::int64_t step, std::int64_t tokens, model::Gpt2& model, runlog::RunLog* log);
  // The newest events applied (at most kRecent), one per line after "\n  ", or " none".
  std::string recent() const;
  // After a rollback the events since the checkpoint are undone with the weights.
  void forget_recent() { recent_.clear(); }

  const config::RemovalSchedule& schedule() const { return schedule_; }

 private:
  static constexpr std::size_t kRecent = 8;
  config::RemovalSchedule schedule_;
  std::deque<std::string> recent_;
};

}  // namespace lnfree::train
