// A scaling study: a family of models, each pretrained (or loaded), measured, fine-tuned as a
// vanilla control and put through LN removal at several schedule speeds. Declared in a TOML file:
//
//   [study]     name, delta (nats, for T_delta), parallel (runs at once), threads_per_run,
//               cache (folder for pretrained models and vocabularies, shared between studies),
//               analysis (run analysis/ at the end), seed (base seed of the whole study) and
//               seeds (K replicates: replicate r uses seed value v = seed + r for its pretraining,
//               its control and its removal runs, in STUDY/runs/<model>/seed-<v>/)
//   [data]      train (manifest), eval_sets ["MANIFEST:SPLIT", ...] (the first is evaluated every
//               eval.interval steps on a fixed subset and defines the measurement), final_eval_sets
//               (evaluated on every window after the last step; default: eval_sets; [] = none),
//               vocab_top (K most frequent tokens + UNK + EOT; 0 = GPT-2's vocabulary),
//               stats_windows (sequences for `lnfree stats`), base_eval_windows
//   [runs]      pretrain, control, remove_ln: run-config templates (configs/*.toml style);
//               start: first removal step s0 of every speed
//   [[model]]   name, init (shape .toml / name / HF folder), pretrain (bool: pretrain with LN
//               first, else init must have weights), overrides (["section.key=value", ...] for
//               the pretraining run), and optionally its own control / remove_ln templates and s0
//               (`start`) when sizes need different batch geometry (configs/study/gpt2.toml)
//   [[speed]]   label and either gap g or gaps [g2, gqk, gv], or template = true (the schedule of
//               the model's remove_ln template as it is, e.g. the paper's). With gaps: ln_2 of
//               layer i at s0 + i*g2, ln_1 Q/K of layer i at q0 + i*gqk with q0 = s0 + L*g2, ln_1 V
//               at v0 + i*gv with v0 = q0 + L*gqk, ln_f at v0 + L*gv; gap g means gaps [g, g, g]
//               (g = 0: every LN at s0). The paper's small schedule is s0 = 20, gaps [2, 2, 3].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lnfree::study {

struct StudyModel {
  std::string name;
  std::string init;
  bool pretrain = true;
  std::vector<std::string> overrides;
  std::string control_template, remove_ln_template;  // empty: the [runs] templates
  std::int64_t start = -1;                           // -1: [runs] start
};

struct StudySpeed {
  std::string label;
  std::vector<std::int64_t> gaps;  // [g_ln2, g_qk, g_v]; empty with from_template
  bool from_template = false;
};

struct StudyConfig {
  std::string origin;  // the file
  std::string name;
  double delta = 0.1;
  std::int64_t parallel = 2;
  std::int64_t threads_per_run = 1;
  std::string cache = "runs/cache";
  bool analysis = true;
  std::int64_t seed = 0;   // base seed: every run seed of the study derives from it
  std::int64_t seeds = 1;  // replicates per (model, run)

  std::string train;
  std::vector<std::string> eval_sets;
  std::vector<std::string> final_eval_sets;  // the full held-out passes after the last step
  std::int64_t vocab_top = 0;
  std::int64_t stats_windows = 64;
  std::int64_t base_eval_windows = 0;

  std::string pretrain_template, control_template, remove_ln_template;
  std::int64_t start = 20;

  std::vector<StudyModel> models;
  std::vector<StudySpeed> speeds;
};

// Reads and validates a study file; unknown keys and bad values are errors naming file and field.
// `overrides` are "section.key=value" assignments (TOML values; a bare word is a string) applied to
// the [study], [data] and [runs] tables before validation, as `lnfree train --set` does for runs.
StudyConfig load_study_config(const std::string& path, const std::vector<std::string>& overrides = {});

// The seed value of replicate r (0-based) and the run seeds derived from it: pretraining and
// fine-tuning get different data orders; the control and the removal runs of one replicate share
// theirs, so that their gap compares like with like.
std::int64_t replicate_seed(const StudyConfig& config, std::int64_t replicate);
std::int64_t pretrain_run_seed(std::int64_t replicate_seed);
std::int64_t finetune_run_seed(std::int64_t replicate_seed);

}  // namespace lnfree::study
