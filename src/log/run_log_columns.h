// The appendable datasets of a run log, shared by the parts of its writer: building a file
// (run_log_create), reading back what a resume keeps (run_log_resume) and appending rows
// (run_log.cpp). Internal to the writer; readers go through run_log.h.
#pragma once

#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "log/h5_handle.h"
#include "log/run_log_schema.h"

namespace lnfree::runlog::detail {

// The fill value of every "step" dataset: what a row reads back whose extent reached the file but
// whose chunk never did (a write that failed with ENOSPC). A resume stops at such a row instead of
// keeping a row of zeros.
inline constexpr std::int64_t kUnwrittenStep = std::numeric_limits<std::int64_t>::min();

// Rows of every column of one table, as raw bytes in memory layout (kept across a resume).
struct TableRows {
  hsize_t rows = 0;
  std::vector<std::vector<unsigned char>> columns;
};

// The in-memory type of one element, and the bytes of one row of a column in memory.
h5::Handle memory_type(Element element);
std::size_t row_bytes(const ColumnDef& def);

// Writes `value` into a scalar fixed-string dataset of `bytes` (/status, /status_message),
// null-padded, cut at a UTF-8 character boundary when it does not fit.
void write_fixed_string(hid_t dataset, std::size_t bytes, const std::string& value, const std::string& file);

// One appendable dataset: unlimited first (row) dimension, chunked.
class Column {
 public:
  Column(h5::Handle dataset, const ColumnDef& def, hsize_t rows)
      : dataset_(std::move(dataset)),
        type_(memory_type(def.element)),
        row_shape_(def.row_shape),
        rows_(rows) {}

  hsize_t rows() const { return rows_; }
  hid_t dataset() const { return dataset_.get(); }

  // Appends `n` rows from `data` (memory layout); failures name `file`.
  void append(const void* data, hsize_t n, const std::string& file);
  void flush(const std::string& file);

 private:
  h5::Handle dataset_;
  h5::Handle type_;
  std::vector<hsize_t> row_shape_;
  hsize_t rows_ = 0;
};

}  // namespace lnfree::runlog::detail
