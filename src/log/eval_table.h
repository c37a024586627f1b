// The evaluation table: `lnfree eval --h5 FILE` appends one row per evaluated set to FILE's group
// /eval_suite, one 1-D dataset per column (docs/evaluation.md lists them), so that h5py reads a
// column as an array: f["eval_suite/mean"][:]. Columns are fixed by the first row written; a later
// row with other columns is refused, naming the file and the column. The file is opened, extended
// and closed for each call, so rows of several runs of `lnfree eval` accumulate.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace lnfree::runlog {

using EvalValue = std::variant<double, std::int64_t, std::string>;
using EvalRow = std::vector<std::pair<std::string, EvalValue>>;

void append_eval_rows(const std::string& path, const std::vector<EvalRow>& rows);

}  // namespace lnfree::runlog
