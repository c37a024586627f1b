// study.json: what a finished study records for analysis/ (sizes with their parameter counts and
// replicates, the original and zero-shot losses, the fine-tuning budget, the vocabulary, the
// unigram loss of the eval set). Written by `lnfree study` and the SLURM analysis job.
#pragma once

#include <string>

#include "study/study_config.h"
#include "study/study_plan.h"

namespace lnfree::study {

// STUDY/study.json.
std::string study_json_path(const std::string& study_dir);

// Cross-entropy of the first eval set under the training split's unigram distribution (add-one
// smoothing): the loss a model that ignores context would reach.
double unigram_eval_loss(const StudyConfig& c, const StudyPlan& plan);

// Writes study.json (atomically) once every job of `plan` is done.
void write_study_json(const StudyConfig& c, const StudyPlan& plan);

}  // namespace lnfree::study
