// Building a run log file from its spec (internal to the writer, run_log.h): the checks of a
// RunLogSpec, and the complete file, written in one go because SWMR allows no new object once
// writing starts. A new log starts empty; a resumed one is rebuilt with the rows it keeps
// (run_log_resume.h).
#pragma once

#include <string>
#include <vector>

#include "log/run_log.h"
#include "log/run_log_columns.h"
#include "log/run_log_schema.h"

namespace lnfree::runlog::detail {

// Fails naming spec.path and the field when the spec cannot describe a log (required and reserved
// attributes, eval set and LN names).
void validate_spec(const RunLogSpec& spec);

// Writes the complete file (attributes, empty or pre-filled tables, status "running") at `target`;
// `kept`, when given, holds one TableRows per entry of `defs`. Error messages name `file`, the run
// log's final path.
void build_file(const std::string& target, const std::string& file, const RunLogSpec& spec,
                const std::vector<TableDef>& defs, const std::vector<TableRows>* kept);

}  // namespace lnfree::runlog::detail
