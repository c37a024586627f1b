// The LN-removal schedule: the [schedule] table of a config expanded, for a model with n_layer
// blocks, into the list of removal events (spec §3.1, §3.2).
//
// Timing: the events of step S fire before the first micro-batch of optimizer step S (step indices
// run 0 .. data.steps-1), so the update that takes the step count from S to S+1 is the first one
// computed with that path fake. On resume at step R, events with step < R are already part of the
// checkpointed LN state and are not replayed.
//
// Expansion of [schedule.KIND] {start, gap}:
//   gap absent  one whole-model event at `start` (layer kWholeModel: every layer at once; the only
//               form for lnf, which is a single module)
//   gap 0       one event per layer 0 .. n_layer-1, all at `start`
//   gap g > 0   layer k at start + k·g
// Order: by step, then the reference's remover order (ln2 ln1qk ln1v lnf eot bos), then layer.
// Any order between kinds is allowed (the reference does not constrain it either: its
// gpt2_test_all_zeros config removed ln1qk, ln1v and lnf at step 0 and ln2 at step 2).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/removal_kind.h"
#include "config/train_config.h"

namespace lnfree::config {

inline constexpr std::int64_t kWholeModel = -1;

struct RemovalEvent {
  std::int64_t step = 0;
  RemovalKind kind = RemovalKind::kLn2;
  std::int64_t layer = kWholeModel;  // block index, or kWholeModel

  bool operator==(const RemovalEvent& o) const {
    return step == o.step && kind == o.kind && layer == o.layer;
  }
};

// "ln1v layer 11 at step 101", "lnf (whole model) at step 104".
std::string describe(const RemovalEvent& event);

// The events of `schedule` for n_layer blocks, in schedule order (unchecked).
std::vector<RemovalEvent> expand_schedule(const ScheduleConfig& schedule, std::int64_t n_layer);

// Refuses, with a message that starts with `origin` and names the event: a step outside
// 0 .. steps-1 (it would never fire), a layer outside 0 .. n_layer-1 (lnf only as a whole-model
// event), and collisions: the same (kind, layer) twice, or a whole-model event and any other event
// of its kind (each LayerNorm path is removed once).
void check_removal_events(const std::vector<RemovalEvent>& events, std::int64_t n_layer, std::int64_t steps,
                          const std::string& origin);

class RemovalSchedule {
 public:
  // Expands, checks and orders the events of `schedule` for a run of `steps` optimizer steps.
  RemovalSchedule(const ScheduleConfig& schedule, std::int64_t n_layer, std::int64_t steps,
                  const std::string& origin);
  // The schedule of a config (data.steps, messages name config.origin).
  static RemovalSchedule of(const TrainConfig& config, std::int64_t n_layer);

  const std::vector<RemovalEvent>& events() const { return events_; }
  // The events that fire before step `step`, in order; empty for most steps.
  std::vector<RemovalEvent> events_at(std::int64_t step) const;
  // Step at which (kind, layer) is removed, counting whole-model events for every layer (pass
  // kWholeModel for lnf); nullopt when never.
  std::optional<std::int64_t> removal_step(RemovalKind kind, std::int64_t layer) const;
  // First and last step of the events that turn a LayerNorm path fake (ln2 ln1qk ln1v lnf; eot and
  // bos only end special divisors); nullopt when there are none.
  std::optional<std::pair<std::int64_t, std::int64_t>> removal_window() const;

 private:
  std::vector<RemovalEvent> events_;
};

}  // namespace lnfree::config
