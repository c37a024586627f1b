// The run log's schema, declared once: every group, its columns and their types, the fixed string
// sizes and the root attributes the writer requires. The writer builds (run_log_create) and checks
// (run_log_resume) files from it, `lnfree schema` prints it, and docs/run-log.md describes it
// (schema version kSchemaVersion).
#pragma once

#include <hdf5.h>

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "log/run_log.h"

namespace lnfree::runlog {

// Fixed string sizes (bytes, null-padded UTF-8): /events/kind, /status, /status_message.
inline constexpr std::size_t kKindBytes = 16;
inline constexpr std::size_t kStatusBytes = 16;
inline constexpr std::size_t kMessageBytes = 1024;

// Root attributes every spec must carry, the model's identity, and those RunLog writes itself.
inline constexpr std::array<const char*, 2> kRequiredStrings = {"config", "mode"};
// The model's identity: a resumed run must agree on all of them.
inline constexpr std::array<const char*, 5> kModelInts = {"n_layer", "n_embd", "n_head", "params_total",
                                                          "params_non_embedding"};
inline constexpr std::array<const char*, 3> kReserved = {"schema_version", "lnfree_version", "git_commit"};

enum class Element { kInt64, kFloat64, kInt8, kString };

struct ColumnDef {
  std::string name;
  Element element;
  std::vector<hsize_t> row_shape;  // dimensions after the row dimension; empty for one value per row
};

// A group of datasets appended together; columns[0] is always "step".
struct TableDef {
  std::string group;
  std::vector<ColumnDef> columns;
};

// The tables of a log with `spec`'s eval sets and LN columns, in file order: /train, /eval/<set>...,
// /events, /ln, /rollbacks.
std::vector<TableDef> table_defs(const RunLogSpec& spec);
// "int64", "float64", "int8", "string16".
const char* element_name(Element element);

}  // namespace lnfree::runlog
