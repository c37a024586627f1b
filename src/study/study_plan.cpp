#include "study/study_plan.h"

#include <fmt/format.h>

#include <filesystem>

#include "config/sha256.h"
#include "config/toml_text.h"
#include "config/train_config.h"
#include "io/model_source.h"
#include "log/run_folder.h"
#include "model/gpt2_shape.h"
#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;

namespace lnfree::study {
namespace {

// "field=[...]" with every set as an escaped TOML string: a path may hold quotes or backslashes.
std::string eval_sets_override(const std::string& field, const std::vector<std::string>& sets) {
  std::string list;
  for (const auto& s : sets) list += (list.empty() ? "" : ",") + config::toml_string(s);
  return field + "=[" + list + "]";
}

std::string set_name(const std::string& spec) {
  return config::eval_set_name(config::parse_eval_set(spec, "study eval_sets"));
}

// FLOPs of a run: training tokens at the model's cost per token, plus the interval evaluations
// (a forward is a third of a training step's FLOPs); the final full passes are left out.
double run_cost(const config::TrainConfig& run, const model::Gpt2Shape& shape) {
  model::Gpt2Shape at_len = shape;
  at_len.n_positions = run.data.seq_len;
  const double per_token = model::training_flops_per_token(at_len);
  const double train = static_cast<double>(run.data.steps) * static_cast<double>(run.data.tokens_per_step);
  double evals = 0;
  if (!run.eval.sets.empty() && run.eval.max_windows > 0) {
    const std::int64_t passes = (run.eval.interval > 0 ? run.data.steps / run.eval.interval : 0) + 1;
    evals = static_cast<double>(passes * run.eval.max_windows * run.data.seq_len) *
            static_cast<double>(run.eval.sets.size());
  }
  return (train + evals / 3.0) * per_token;
}

// The trainer writes the last step's checkpoint with DONE last: the run's own completion mark,
// which a study run on one machine and a SLURM array both see.
std::string final_checkpoint(const fs::path& run, const config::TrainConfig& cfg) {
  return run_folder::done_path(run_folder::checkpoint_path(run.string(), cfg.data.steps));
}

std::vector<std::string> train_args(const std::string& config, const std::string& out,
                                    const std::vector<std::string>& overrides) {
  std::vector<std::string> args = {"train", "--config", config, "--out", out};
  for (const auto& o : overrides) {
    args.push_back("--set");
    args.push_back(o);
  }
  return args;
}

}  // namespace

std::vector<std::string> speed_overrides(std::int64_t start, const StudySpeed& speed, std::int64_t n_layer) {
  if (speed.from_template) return {};
  const std::int64_t L = n_layer, g2 = speed.gaps.at(0), gqk = speed.gaps.at(1), gv = speed.gaps.at(2);
  const std::int64_t qk = start + L * g2, v = qk + L * gqk, f = v + L * gv;
  return {fmt::format("schedule.ln2.start={}", start), fmt::format("schedule.ln2.gap={}", g2),
          fmt::format("schedule.ln1qk.start={}", qk),  fmt::format("schedule.ln1qk.gap={}", gqk),
          fmt::format("schedule.ln1v.start={}", v),    fmt::format("schedule.ln1v.gap={}", gv),
          fmt::format("schedule.lnf.start={}", f)};
}

std::string replicate_dir(std::int64_t seed) { return fmt::format("seed-{}", seed); }

StudyPlan make_plan(const StudyConfig& c, const std::string& out_dir) {
  StudyPlan plan;
  plan.out_dir = out_dir;
  plan.eval_set_name = set_name(c.eval_sets.front());
  const fs::path out(out_dir), cache(c.cache);
  const std::string threads = fmt::format("run.threads={}", c.threads_per_run);
  const std::string first_eval = c.eval_sets.front();
  // Interval evaluations on a fixed subset of the first set (the measurement); the full held-out
  // pass of every set once, after the last step.
  const std::vector<std::string> evals = {
      eval_sets_override("eval.sets", {first_eval}),
      eval_sets_override("eval.final_sets", c.final_eval_sets.value_or(c.eval_sets))};
  for (std::int64_t r = 0; r < c.seeds; ++r) plan.seeds.push_back(replicate_seed(c, r));

  std::vector<std::string> data_overrides = {"data.train=" + c.train};
  std::vector<std::string> remap_args;
  if (c.vocab_top > 0) {
    const std::string manifest =
        fs::is_directory(c.train) ? (fs::path(c.train) / "manifest.json").string() : c.train;
    const std::string digest = config::sha256_hex(read_file(manifest)).substr(0, 12);
    plan.vocab_path = (cache / "vocab" / fmt::format("{}-top{}.json", digest, c.vocab_top)).string();
    plan.jobs.push_back(
        {"vocab",
         {"vocab", "--data", c.train, "--top", std::to_string(c.vocab_top), "--out", plan.vocab_path},
         {},
         plan.vocab_path,
         "",
         "",
         (out / "logs" / "vocab.log").string(),
         0.0});
    data_overrides.push_back("data.vocab_remap=" + plan.vocab_path);
    remap_args = {"--vocab-remap", plan.vocab_path};
  }
  for (const auto& m : c.models) {
    const std::string control_template = m.control_template.empty() ? c.control_template : m.control_template;
    const std::string remove_template =
        m.remove_ln_template.empty() ? c.remove_ln_template : m.remove_ln_template;
    const std::int64_t start = m.start.value_or(c.start);
    const auto control_cfg = config::load_train_config(control_template, data_overrides);
    const std::int64_t seq_len = control_cfg.data.seq_len;
    auto shape = io::resolve_model_source(m.init).shape;
    if (c.vocab_top > 0) shape.vocab_size = c.vocab_top + 2;
    SizeInfo info{m.name,
                  shape.n_layer,
                  model::count_parameters(shape).total,
                  model::count_parameters(shape).non_embedding,
                  control_cfg.data.steps * control_cfg.data.tokens_per_step,
                  {}};
    for (const std::int64_t seed : plan.seeds) {
      const std::string rep = replicate_dir(seed);
      const std::string id = m.name + "/" + rep;
      const fs::path model_dir = out / "models" / m.name / rep, runs_dir = out / "runs" / m.name / rep;
      auto log_of = [&](const std::string& what) {
        return (out / "logs" / (m.name + "." + rep + "." + what + ".log")).string();
      };
      std::vector<std::string> base_deps =
          c.vocab_top > 0 ? std::vector<std::string>{"vocab"} : std::vector<std::string>{};
      std::string base = m.init;
      if (m.pretrain) {
        auto overrides = data_overrides;
        overrides.insert(overrides.end(), {"run.init=" + m.init, threads, evals.front()});
        overrides.insert(overrides.end(), m.overrides.begin(), m.overrides.end());
        overrides.push_back(fmt::format("run.seed={}", pretrain_run_seed(seed)));
        const auto cfg = config::load_train_config(c.pretrain_template, overrides);
        const fs::path run =
            cache / "pretrain" / fmt::format("{}-{}", m.name, config::config_hash(cfg).substr(0, 12));
        plan.jobs.push_back({id + "/pretrain", train_args(c.pretrain_template, run.string(), overrides),
                             base_deps,
                             (fs::path(run_folder::final_path(run.string())) / "config.json").string(), "",
                             run.string(), log_of("pretrain"), run_cost(cfg, shape)});
        base = run_folder::final_path(run.string());
        base_deps = {id + "/pretrain"};
      }
      ReplicateInfo replicate{seed, rep, (model_dir / "original.json").string(),
                              (model_dir / "zero-shot.json").string()};
      const std::string stats = (model_dir / "stats.json").string();
      std::vector<std::string> stats_args = {"stats",
                                             "--model",
                                             base,
                                             "--data",
                                             c.train,
                                             "--windows",
                                             std::to_string(c.stats_windows),
                                             "--seq-len",
                                             std::to_string(seq_len),
                                             "--out",
                                             stats};
      stats_args.insert(stats_args.end(), remap_args.begin(), remap_args.end());
      plan.jobs.push_back({id + "/stats", stats_args, base_deps, stats, "", "", log_of("stats"), 0.0});
      for (bool zero_shot : {false, true}) {
        const std::string& result = zero_shot ? replicate.zero_shot_eval : replicate.original_eval;
        std::vector<std::string> a = {"eval",
                                      "--model",
                                      base,
                                      "--data",
                                      first_eval,
                                      "--seq-len",
                                      std::to_string(seq_len),
                                      "--max-windows",
                                      std::to_string(c.base_eval_windows),
                                      "--out",
                                      result};
        a.insert(a.end(), remap_args.begin(), remap_args.end());
        if (zero_shot) a.insert(a.end(), {"--sigma-init", stats, "--all-fake"});
        auto deps = base_deps;
        if (zero_shot) deps.push_back(id + "/stats");
        plan.jobs.push_back({id + (zero_shot ? "/zero-shot" : "/original"), a, deps, result, "", "",
                             log_of(zero_shot ? "zero-shot" : "original"), 0.0});
      }
      auto run_overrides = data_overrides;
      run_overrides.insert(run_overrides.end(), {"run.init=" + base, threads});
      run_overrides.insert(run_overrides.end(), evals.begin(), evals.end());
      run_overrides.push_back(fmt::format("run.seed={}", finetune_run_seed(seed)));
      const auto control_run_cfg = config::load_train_config(control_template, run_overrides);
      const fs::path control = runs_dir / "control";
      plan.jobs.push_back({id + "/control", train_args(control_template, control.string(), run_overrides),
                           base_deps, final_checkpoint(control, control_run_cfg), "", control.string(),
                           log_of("control"), run_cost(control_run_cfg, shape)});
      for (const auto& speed : c.speeds) {
        auto overrides = run_overrides;
        overrides.push_back("ln.sigma_init=" + stats);
        auto schedule = speed_overrides(start, speed, shape.n_layer);
        overrides.insert(overrides.end(), schedule.begin(), schedule.end());
        const auto cfg = config::load_train_config(remove_template, overrides);  // validates the schedule
        const fs::path run = runs_dir / ("speed-" + speed.label);
        auto deps = base_deps;
        deps.push_back(id + "/stats");
        plan.jobs.push_back({id + "/speed-" + speed.label,
                             train_args(remove_template, run.string(), overrides), deps,
                             final_checkpoint(run, cfg), run_folder::diverged_path(run.string()),
                             run.string(), log_of("speed-" + speed.label), run_cost(cfg, shape)});
      }
      info.replicates.push_back(replicate);
    }
    plan.sizes.push_back(info);
  }
  return plan;
}

}  // namespace lnfree::study
