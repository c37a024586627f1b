#include "config/removal_schedule.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <tuple>

#include "util/error.h"

namespace lnfree::config {

std::string describe(const RemovalEvent& event) {
  if (event.layer == kWholeModel)
    return fmt::format("{} (whole model) at step {}", removal_kind_name(event.kind), event.step);
  return fmt::format("{} layer {} at step {}", removal_kind_name(event.kind), event.layer, event.step);
}

std::vector<RemovalEvent> expand_schedule(const ScheduleConfig& schedule, std::int64_t n_layer) {
  std::vector<RemovalEvent> events;
  for (RemovalKind kind : kAllRemovalKinds) {
    const auto& group = schedule[kind];
    if (!group) continue;
    if (!group->gap) {
      events.push_back({group->start, kind, kWholeModel});
      continue;
    }
    for (std::int64_t layer = 0; layer < n_layer; ++layer)
      events.push_back({group->start + layer * *group->gap, kind, layer});
  }
  return events;
}

void check_removal_events(const std::vector<RemovalEvent>& events, std::int64_t n_layer, std::int64_t steps,
                          const std::string& origin) {
  if (n_layer < 1) fail("{}: schedule: expected a model with n_layer >= 1, got {}", origin, n_layer);
  // (kind, layer) -> the first event seen for it; kWholeModel stands for every layer of the kind.
  std::map<std::pair<RemovalKind, std::int64_t>, RemovalEvent> seen;
  std::map<RemovalKind, RemovalEvent> first_of_kind;
  for (const auto& event : events) {
    const auto name = removal_kind_name(event.kind);
    if (event.step < 0 || event.step >= steps)
      fail(
          "{}: [schedule.{}]: event '{}' is outside the run: expected a step in 0 .. {} (data.steps = {}), "
          "so it "
          "would never fire",
          origin, name, describe(event), steps - 1, steps);
    if (event.kind == RemovalKind::kLnf && event.layer != kWholeModel)
      fail("{}: [schedule.lnf]: event '{}': expected a whole-model event (ln_f is a single module)", origin,
           describe(event));
    if (event.layer != kWholeModel && (event.layer < 0 || event.layer >= n_layer))
      fail("{}: [schedule.{}]: event '{}': expected a layer in 0 .. {} (n_layer = {})", origin, name,
           describe(event), n_layer - 1, n_layer);
    auto refuse = [&](const RemovalEvent& earlier) {
      fail("{}: [schedule.{}]: event '{}' collides with event '{}' (each LayerNorm path is removed once)",
           origin, name, describe(event), describe(earlier));
    };
    if (auto it = seen.find({event.kind, event.layer}); it != seen.end()) refuse(it->second);
    if (auto it = seen.find({event.kind, kWholeModel}); it != seen.end()) refuse(it->second);
    if (event.layer == kWholeModel)
      if (auto it = first_of_kind.find(event.kind); it != first_of_kind.end()) refuse(it->second);
    seen.emplace(std::make_pair(event.kind, event.layer), event);
    first_of_kind.emplace(event.kind, event);
  }
}

RemovalSchedule::RemovalSchedule(const ScheduleConfig& schedule, std::int64_t n_layer, std::int64_t steps,
                                 const std::string& origin)
    : events_(expand_schedule(schedule, n_layer)) {
  check_removal_events(events_, n_layer, steps, origin);
  std::stable_sort(events_.begin(), events_.end(), [](const RemovalEvent& a, const RemovalEvent& b) {
    return std::make_tuple(a.step, static_cast<int>(a.kind), a.layer) <
           std::make_tuple(b.step, static_cast<int>(b.kind), b.layer);
  });
}

RemovalSchedule RemovalSchedule::of(const TrainConfig& config, std::int64_t n_layer) {
  return RemovalSchedule(config.schedule, n_layer, config.data.steps, config.origin);
}

std::vector<RemovalEvent> RemovalSchedule::events_at(std::int64_t step) const {
  auto begin = std::lower_bound(events_.begin(), events_.end(), step,
                                [](const RemovalEvent& e, std::int64_t s) { return e.step < s; });
  auto end = std::upper_bound(begin, events_.end(), step,
                              [](std::int64_t s, const RemovalEvent& e) { return s < e.step; });
  return {begin, end};
}

std::optional<std::int64_t> RemovalSchedule::removal_step(RemovalKind kind, std::int64_t layer) const {
  for (const auto& event : events_)
    if (event.kind == kind && (event.layer == layer || event.layer == kWholeModel)) return event.step;
  return std::nullopt;
}

std::optional<std::pair<std::int64_t, std::int64_t>> RemovalSchedule::removal_window() const {
  std::optional<std::pair<std::int64_t, std::int64_t>> window;
  for (const auto& event : events_) {
    if (!removes_layer_norm(event.kind)) continue;
    if (!window) window = std::make_pair(event.step, event.step);
    window->second = std::max(window->second, event.step);
  }
  return window;
}

}  // namespace lnfree::config
