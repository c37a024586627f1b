// A scaling study: a family of models, each pretrained (or loaded), measured, fine-tuned as a
// vanilla control and put through LN removal at several schedule speeds. Declared in a TOML file
// with the tables [study], [data], [runs] and the arrays [[model]] and [[speed]]; every key, its
// type, default and meaning is declared once in study_config.cpp's field lists, read by the config
// engine (config/fields.h) and written to docs/config.md by `lnfree config --doc`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lnfree::study {

struct StudyModel {
  std::string name;
  std::string init;
  bool pretrain = true;
  std::vector<std::string> overrides;
  std::string control_template, remove_ln_template;  // empty: the [runs] templates
  std::optional<std::int64_t> start;                 // absent: [runs] start
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
  // The full held-out passes after the last step; absent: eval_sets.
  std::optional<std::vector<std::string>> final_eval_sets;
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

// The study file's part of docs/config.md (`lnfree config --doc`), from the field lists.
std::string study_config_markdown();

}  // namespace lnfree::study
