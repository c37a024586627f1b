// The jobs of a study and their dependencies. Every job is one `lnfree` invocation; its output
// folder or file is fixed by the plan, so a re-run finds what is already done:
//
//   CACHE/vocab/<manifest hash>-top<K>.json          lnfree vocab           (shared between studies)
//   CACHE/pretrain/<model>-<config hash>/             lnfree train pretrain  (shared between studies)
//   STUDY/models/<model>/seed-<v>/stats.json                 lnfree stats
//   STUDY/models/<model>/seed-<v>/{original,zero-shot}.json  lnfree eval (LN real / every LN fake)
//   STUDY/runs/<model>/seed-<v>/control/                     lnfree train finetune
//   STUDY/runs/<model>/seed-<v>/speed-<label>/               lnfree train remove-ln
//
// with one seed-<v> folder per replicate (study_config.h: v = [study] seed + r); a pretrained model
// is cached per replicate, since its config (and hash) carries the replicate's seed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "study/study_config.h"

namespace lnfree::study {

struct Job {
  std::string id;                 // "<model>/<what>", or "vocab"
  std::vector<std::string> args;  // lnfree's arguments
  std::vector<std::string> deps;  // ids of jobs that must finish first
  std::string done_marker;        // exists once the job finished (train runs: the last checkpoint's DONE)
  std::string diverged_marker;    // remove-ln runs: the trainer's DIVERGED file, a finished run too
  std::string run_dir;            // train jobs: the run folder (resumed when it has a config)
  std::string log_path;           // stdout + stderr of the job
  double cost = 0;                // estimated training FLOPs (0: a short job): queue order, ETA
};

struct ReplicateInfo {
  std::int64_t seed = 0;                      // the replicate's seed value v
  std::string dir;                            // "seed-<v>", under runs/<model>/ and models/<model>/
  std::string original_eval, zero_shot_eval;  // the eval JSON files
};

struct SizeInfo {
  std::string name;
  std::int64_t n_layer = 0;
  std::int64_t params_total = 0, params_non_embedding = 0;
  std::int64_t control_tokens = 0;  // fine-tuning tokens of the control run
  std::vector<ReplicateInfo> replicates;
};

struct StudyPlan {
  std::string out_dir;
  std::string vocab_path;  // empty without remapping
  std::string eval_set_name;
  std::vector<std::int64_t> seeds;  // the replicates' seed values
  std::vector<SizeInfo> sizes;
  std::vector<Job> jobs;
};

StudyPlan make_plan(const StudyConfig& config, const std::string& out_dir);

// The folder name of a replicate: "seed-<v>".
std::string replicate_dir(std::int64_t seed);

// The removal schedule of one speed as --set overrides (see study_config.h); none for a speed
// that keeps its template's schedule.
std::vector<std::string> speed_overrides(std::int64_t start, const StudySpeed& speed, std::int64_t n_layer);

}  // namespace lnfree::study
