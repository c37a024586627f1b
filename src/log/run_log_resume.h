// What a resumed run log keeps (internal to the writer, run_log.h: RunLog::open_for_resume): the
// existing file is checked against the resumed run's spec (schema version, model, LN names, eval
// sets) and the rows before the resume step are read back, to be written into a rebuilt file
// (run_log_create.h), so that the continued run produces the same log as an uninterrupted one.
#pragma once

#include <cstdint>
#include <vector>

#include "log/run_log.h"
#include "log/run_log_columns.h"
#include "log/run_log_schema.h"

namespace lnfree::runlog::detail {

// One TableRows per entry of `defs`: the rows with step < resume_step of spec.path, stopping at the
// first row that never fully reached the disk (a writer that died inside an append). A new eval
// set, or /rollbacks in a log written before it existed, starts empty.
std::vector<TableRows> read_resume_rows(const RunLogSpec& spec, const std::vector<TableDef>& defs,
                                        std::int64_t resume_step);

}  // namespace lnfree::runlog::detail
