// validate(): every value of a TrainConfig and the relations between them, before any work; each
// message names the config's origin, the field and what was expected. Types, names of enum values
// and required fields are the config engine's (config/fields.h), checked while reading.
#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>

#include "config/enum_names.h"
#include "config/removal_schedule.h"
#include "config/toml_text.h"
#include "config/train_config.h"
#include "util/error.h"

namespace lnfree::config {
namespace {

// ---------------------------------------------------------------------------------------------
// Validation helpers: every message names the origin and the field.

template <class T>
[[noreturn]] void invalid(const TrainConfig& c, const char* field, const std::string& expected,
                          const T& got) {
  if constexpr (std::is_same_v<T, double>) {
    fail("{}: field '{}': expected {}, got {}", c.origin, field, expected, float_text(got));
  } else {
    fail("{}: field '{}': expected {}, got {}", c.origin, field, expected, got);
  }
}

void at_least(const TrainConfig& c, const char* field, std::int64_t value, std::int64_t minimum) {
  if (value < minimum) invalid(c, field, fmt::format("an integer >= {}", minimum), value);
}

void in_unit_interval(const TrainConfig& c, const char* field, double value) {
  if (!(value >= 0.0 && value < 1.0)) invalid(c, field, "a number in [0, 1)", value);
}

void non_negative(const TrainConfig& c, const char* field, double value) {
  if (!(value >= 0.0 && std::isfinite(value))) invalid(c, field, "a finite number >= 0", value);
}

void non_empty(const TrainConfig& c, const char* field, const std::string& value, const char* what) {
  if (value.empty()) invalid(c, field, what, "an empty string");
}

void validate_schedule(const TrainConfig& c) {
  for (RemovalKind kind : kAllRemovalKinds) {
    const auto& group = c.schedule[kind];
    if (!group) continue;
    const auto name = removal_kind_name(kind);
    if (c.run.mode != RunMode::kRemoveLn)
      fail(
          "{}: [schedule.{}]: expected no [schedule] in mode '{}' (only remove-ln removes LayerNorms), got "
          "start = {}",
          c.origin, name, enum_name(c.run.mode), group->start);
    if (group->start < 0)
      fail("{}: field 'schedule.{}.start': expected an integer >= 0, got {}", c.origin, name, group->start);
    if (group->start >= c.data.steps)
      fail(
          "{}: field 'schedule.{}.start': expected a step before data.steps = {} (the last step index is "
          "{}), got {}",
          c.origin, name, c.data.steps, c.data.steps - 1, group->start);
    if (group->gap && *group->gap < 0)
      fail("{}: field 'schedule.{}.gap': expected an integer >= 0 or absent, got {}", c.origin, name,
           *group->gap);
    if (kind == RemovalKind::kLnf && group->gap)
      fail(
          "{}: field 'schedule.lnf.gap': expected absent (ln_f is a single module, removed by one event), "
          "got {}",
          c.origin, *group->gap);
  }
  if (c.run.mode == RunMode::kRemoveLn) {
    for (RemovalKind kind : {RemovalKind::kLn2, RemovalKind::kLn1Qk, RemovalKind::kLn1V, RemovalKind::kLnf})
      if (!c.schedule[kind])
        fail(
            "{}: [schedule]: mode 'remove-ln' must remove every LayerNorm (ln2 ln1qk ln1v lnf), but "
            "[schedule.{}] is missing",
            c.origin, removal_kind_name(kind));
    // A special divisor that no event ends stays in the final model, which then is not affine.
    for (auto [on, kind, field] : {std::tuple{c.ln.eot_special, RemovalKind::kEot, "ln.eot_special"},
                                   std::tuple{c.ln.bos_special, RemovalKind::kBos, "ln.bos_special"}})
      if (on && !c.schedule[kind])
        fail(
            "{}: field '{}' = true needs a [schedule.{}] event to end it (without it the final model keeps "
            "the special divisor and cannot be folded or exported)",
            c.origin, field, removal_kind_name(kind));
  }
}

}  // namespace

void validate(const TrainConfig& c) {
  const auto& run = c.run;
  at_least(c, "run.seed", run.seed, 0);
  non_empty(c, "run.init", run.init, "a model source (HF folder, .toml shape file or model name)");
  at_least(c, "run.threads", run.threads, 0);

  in_unit_interval(c, "model.dropout", c.model.dropout);
  if (run.norm == RunNorm::kRmsNorm && c.model.dropout > 0)
    fail(
        "{}: field 'model.dropout': expected 0 with run.norm = \"rmsnorm\" (dropout on a residual write makes "
        "a centred write non-centred, so the RMSNorm run would no longer be the Pre-LN run), got {}",
        c.origin, float_text(c.model.dropout));

  const auto& data = c.data;
  non_empty(c, "data.train", data.train, "a token manifest.json path (from lnfree prepare)");
  non_empty(c, "data.train_split", data.train_split, "a split name");
  at_least(c, "data.seq_len", data.seq_len, 1);
  at_least(c, "data.micro_batch", data.micro_batch, 1);
  at_least(c, "data.tokens_per_step", data.tokens_per_step, 1);
  at_least(c, "data.steps", data.steps, 1);
  if (data.tokens_per_step % data.seq_len != 0)
    invalid(c, "data.tokens_per_step", fmt::format("a multiple of data.seq_len = {}", data.seq_len),
            data.tokens_per_step);
  if (sequences_per_step(data) % data.micro_batch != 0)
    invalid(c, "data.tokens_per_step",
            fmt::format(
                "a whole number of micro-batches: tokens_per_step / seq_len = {} sequences is not a multiple "
                "of data.micro_batch = {}",
                sequences_per_step(data), data.micro_batch),
            data.tokens_per_step);

  const auto& optim = c.optim;
  non_negative(c, "optim.min_lr", optim.min_lr);
  if (!(optim.lr >= optim.min_lr) || !std::isfinite(optim.lr))
    invalid(c, "optim.lr", fmt::format("a finite number >= optim.min_lr = {}", optim.min_lr), optim.lr);
  at_least(c, "optim.warmup", optim.warmup, 0);
  if (optim.warmup >= data.steps)
    invalid(c, "optim.warmup", fmt::format("fewer steps than data.steps = {}", data.steps), optim.warmup);
  if (optim.cosine_steps != 0 && optim.cosine_steps < data.steps)
    invalid(c, "optim.cosine_steps", fmt::format("0 (= data.steps) or >= data.steps = {}", data.steps),
            optim.cosine_steps);
  in_unit_interval(c, "optim.beta1", optim.beta1);
  in_unit_interval(c, "optim.beta2", optim.beta2);
  if (!(optim.eps > 0.0 && std::isfinite(optim.eps)))
    invalid(c, "optim.eps", "a finite number > 0", optim.eps);
  non_negative(c, "optim.weight_decay", optim.weight_decay);
  non_negative(c, "optim.grad_clip", optim.grad_clip);
  if (!(optim.rollback_lr_factor > 0.0 && optim.rollback_lr_factor < 1.0))
    invalid(c, "optim.rollback_lr_factor", "a number in (0, 1)", optim.rollback_lr_factor);
  at_least(c, "optim.max_rollbacks", optim.max_rollbacks, 1);

  in_unit_interval(c, "ln.momentum", c.ln.momentum);
  at_least(c, "ln.momentum_sequences", c.ln.momentum_sequences, 1);
  non_negative(c, "ln.aux_weight", c.ln.aux_weight);

  validate_schedule(c);

  at_least(c, "eval.interval", c.eval.interval, 0);
  for (const auto& set : c.eval.sets) parse_eval_set(set, c.origin + ": field 'eval.sets'");
  for (const auto& set : c.eval.final_sets) parse_eval_set(set, c.origin + ": field 'eval.final_sets'");
  at_least(c, "eval.max_windows", c.eval.max_windows, 0);
  at_least(c, "eval.batch", c.eval.batch, 1);
  at_least(c, "checkpoint.interval", c.checkpoint.interval, 0);
  at_least(c, "checkpoint.keep", c.checkpoint.keep, 1);
  at_least(c, "log.interval", c.log.interval, 1);
  at_least(c, "dist.bucket_mb", c.dist.bucket_mb, 1);
  at_least(c, "dist.timeout_s", c.dist.timeout_s, 1);
}

}  // namespace lnfree::config
