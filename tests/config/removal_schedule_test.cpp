#include "config/removal_schedule.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "model/gpt2_shape.h"
#include "util/error.h"

namespace lc = lnfree::config;
using lc::RemovalKind;

namespace {

const std::string kConfigDir = std::string(LNFREE_SOURCE_DIR) + "/configs";

lc::ScheduleConfig schedule_of(
    std::initializer_list<std::tuple<RemovalKind, std::int64_t, std::optional<std::int64_t>>> groups) {
  lc::ScheduleConfig schedule;
  for (const auto& [kind, start, gap] : groups) schedule[kind] = lc::RemovalGroupConfig{start, gap};
  return schedule;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const lnfree::Error& e) {
    std::printf("error: %s\n", e.what());
    return e.what();
  }
  return "";
}

}  // namespace

TEST(RemovalSchedule, PaperConfigsGiveTheSpecWindowsAndLastEvents) {
  // Spec §3.3: removal windows and last per-layer events (LN_MLP^{L-1}, LN_qk^{L-1}, LN_v^{L-1}, LN_f).
  struct Case {
    const char* file;
    std::int64_t first, last, ln2, qk, v, f;
  };
  const Case cases[] = {{"gpt2-small", 20, 104, 42, 66, 101, 104},
                        {"gpt2-medium", 20, 188, 66, 114, 185, 188},
                        {"gpt2-large", 30, 534, 170, 314, 528, 534},
                        {"gpt2-xl", 50, 722, 238, 430, 716, 722}};
  for (const auto& k : cases) {
    const auto config = lc::load_train_config(kConfigDir + "/" + k.file + ".toml");
    const auto shape = lnfree::model::shape_from_toml_file(lnfree::model::named_shape_path(config.run.init));
    const auto schedule = lc::RemovalSchedule::of(config, shape.n_layer);
    const std::int64_t last_layer = shape.n_layer - 1;
    const auto window = schedule.removal_window();
    ASSERT_TRUE(window) << k.file;
    const std::int64_t ln2 = *schedule.removal_step(RemovalKind::kLn2, last_layer);
    const std::int64_t qk = *schedule.removal_step(RemovalKind::kLn1Qk, last_layer);
    const std::int64_t v = *schedule.removal_step(RemovalKind::kLn1V, last_layer);
    const std::int64_t f = *schedule.removal_step(RemovalKind::kLnf, lc::kWholeModel);
    std::printf(
        "%-12s L=%-2lld window [%lld, %lld]  last ln2 %lld  ln1qk %lld  ln1v %lld  lnf %lld  (%zu events)\n",
        k.file, static_cast<long long>(shape.n_layer), static_cast<long long>(window->first),
        static_cast<long long>(window->second), static_cast<long long>(ln2), static_cast<long long>(qk),
        static_cast<long long>(v), static_cast<long long>(f), schedule.events().size());
    EXPECT_EQ(window->first, k.first) << k.file;
    EXPECT_EQ(window->second, k.last) << k.file;
    EXPECT_EQ(ln2, k.ln2) << k.file;
    EXPECT_EQ(qk, k.qk) << k.file;
    EXPECT_EQ(v, k.v) << k.file;
    EXPECT_EQ(f, k.f) << k.file;
    // Every LN path of every layer is removed exactly once; eot is one event per layer (gap 0).
    EXPECT_EQ(schedule.events().size(), static_cast<size_t>(4 * shape.n_layer + 1)) << k.file;
    for (std::int64_t layer = 0; layer < shape.n_layer; ++layer)
      for (RemovalKind kind : {RemovalKind::kLn2, RemovalKind::kLn1Qk, RemovalKind::kLn1V, RemovalKind::kEot})
        EXPECT_TRUE(schedule.removal_step(kind, layer)) << k.file << " layer " << layer;
    EXPECT_FALSE(schedule.removal_step(RemovalKind::kBos, 0)) << k.file;
  }
}

TEST(RemovalSchedule, GapSemanticsFollowTheReference) {
  // gap absent: one whole-model event; gap 0: every layer at start; gap g: layer k at start + k*g.
  const auto schedule = lc::RemovalSchedule(schedule_of({{RemovalKind::kLn2, 3, std::nullopt},
                                                         {RemovalKind::kLn1Qk, 5, 0},
                                                         {RemovalKind::kLn1V, 6, 2},
                                                         {RemovalKind::kLnf, 7, std::nullopt},
                                                         {RemovalKind::kBos, 0, std::nullopt}}),
                                            3, 20, "t");
  const std::vector<lc::RemovalEvent> expected = {
      {0, RemovalKind::kBos, -1},  {3, RemovalKind::kLn2, -1},  {5, RemovalKind::kLn1Qk, 0},
      {5, RemovalKind::kLn1Qk, 1}, {5, RemovalKind::kLn1Qk, 2}, {6, RemovalKind::kLn1V, 0},
      {7, RemovalKind::kLnf, -1},  {8, RemovalKind::kLn1V, 1},  {10, RemovalKind::kLn1V, 2}};
  EXPECT_EQ(schedule.events(), expected);
  // A whole-model event removes every layer.
  EXPECT_EQ(schedule.removal_step(RemovalKind::kLn2, 2), 3);
  EXPECT_EQ(*schedule.removal_window(), std::make_pair(std::int64_t{3}, std::int64_t{10}));
}

TEST(RemovalSchedule, SameStepEventsFollowTheRemoverOrderThenLayer) {
  // All at step 0 (like the reference's gpt2_test_all_zeros, which also put ln2 later).
  const auto schedule = lc::RemovalSchedule(schedule_of({{RemovalKind::kBos, 0, 0},
                                                         {RemovalKind::kEot, 0, 0},
                                                         {RemovalKind::kLnf, 0, std::nullopt},
                                                         {RemovalKind::kLn1V, 0, 0},
                                                         {RemovalKind::kLn1Qk, 0, 0},
                                                         {RemovalKind::kLn2, 2, 0}}),
                                            2, 3, "t");
  std::string order;
  for (const auto& e : schedule.events_at(0))
    order += std::string(lc::removal_kind_name(e.kind)) + std::to_string(e.layer) + " ";
  EXPECT_EQ(order, "ln1qk0 ln1qk1 ln1v0 ln1v1 lnf-1 eot0 eot1 bos0 bos1 ");
  EXPECT_TRUE(schedule.events_at(1).empty());
  ASSERT_EQ(schedule.events_at(2).size(), 2u);
  EXPECT_EQ(schedule.events_at(2)[1], (lc::RemovalEvent{2, RemovalKind::kLn2, 1}));
  EXPECT_TRUE(schedule.events_at(3).empty());
  EXPECT_EQ(lc::describe(schedule.events_at(2)[1]), "ln2 layer 1 at step 2");
  EXPECT_EQ(lc::describe(schedule.events_at(0)[4]), "lnf (whole model) at step 0");
}

TEST(RemovalSchedule, RefusesEventsAtOrAfterTheLastStep) {
  // Small's ln1v: layer 11 at 68 + 11*3 = 101. With 101 steps (last index 100) it never fires.
  const auto schedule = schedule_of({{RemovalKind::kLn1V, 68, 3}});
  EXPECT_NO_THROW(lc::RemovalSchedule(schedule, 12, 102, "small.toml"));
  const auto message = error_of([&] { lc::RemovalSchedule(schedule, 12, 101, "small.toml"); });
  EXPECT_NE(message.find("small.toml"), std::string::npos) << message;
  EXPECT_NE(message.find("'ln1v layer 11 at step 101'"), std::string::npos) << message;
  EXPECT_NE(message.find("0 .. 100"), std::string::npos) << message;

  // Through a config: starts are valid for data.steps, the expansion is not.
  const std::string text = R"(
[run]
mode = "remove-ln"
init = "gpt2"
[data]
train = "m.json"
micro_batch = 1
tokens_per_step = 1024
steps = 30
[optim]
warmup = 1
[schedule.ln2]
start = 0
gap = 2
[schedule.ln1qk]
start = 1
gap = 0
[schedule.ln1v]
start = 2
gap = 0
[schedule.lnf]
start = 3
)";
  const auto config = lc::parse_train_config(text, "cfg.toml");
  EXPECT_EQ(lc::RemovalSchedule::of(config, 12).events().back(),
            (lc::RemovalEvent{22, RemovalKind::kLn2, 11}));
  const auto refused = error_of([&] { lc::RemovalSchedule::of(config, 16); });  // layer 15 at step 30
  EXPECT_NE(refused.find("cfg.toml"), std::string::npos) << refused;
  EXPECT_NE(refused.find("'ln2 layer 15 at step 30'"), std::string::npos) << refused;
}

TEST(RemovalSchedule, RefusesCollisionsAndImpossibleEvents) {
  using E = lc::RemovalEvent;
  auto check = [](std::vector<E> events) { lc::check_removal_events(events, 4, 50, "events"); };
  EXPECT_NO_THROW(check({{1, RemovalKind::kLn2, 0}, {2, RemovalKind::kLn2, 1}, {2, RemovalKind::kLn1Qk, 0}}));

  auto same = error_of([&] { check({{1, RemovalKind::kLn2, 0}, {5, RemovalKind::kLn2, 0}}); });
  EXPECT_NE(same.find("'ln2 layer 0 at step 5' collides with event 'ln2 layer 0 at step 1'"),
            std::string::npos)
      << same;
  auto whole_then_layer = error_of([&] { check({{1, RemovalKind::kLn1V, -1}, {3, RemovalKind::kLn1V, 2}}); });
  EXPECT_NE(
      whole_then_layer.find("'ln1v layer 2 at step 3' collides with event 'ln1v (whole model) at step 1'"),
      std::string::npos)
      << whole_then_layer;
  auto layer_then_whole = error_of([&] { check({{1, RemovalKind::kEot, 3}, {3, RemovalKind::kEot, -1}}); });
  EXPECT_NE(layer_then_whole.find("collides"), std::string::npos) << layer_then_whole;
  auto twice = error_of([&] { check({{7, RemovalKind::kLnf, -1}, {7, RemovalKind::kLnf, -1}}); });
  EXPECT_NE(twice.find("'lnf (whole model) at step 7' collides"), std::string::npos) << twice;

  EXPECT_NE(error_of([&] {
              check({{1, RemovalKind::kLnf, 0}});
            }).find("ln_f is a single module"),
            std::string::npos);
  EXPECT_NE(error_of([&] { check({{1, RemovalKind::kLn2, 4}}); }).find("layer in 0 .. 3"), std::string::npos);
  EXPECT_NE(error_of([&] { check({{-1, RemovalKind::kLn2, 0}}); }).find("never fire"), std::string::npos);
  EXPECT_NE(error_of([&] { lc::check_removal_events({}, 0, 50, "events"); }).find("n_layer >= 1"),
            std::string::npos);
}
