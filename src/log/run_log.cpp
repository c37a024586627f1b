#include "log/run_log.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <utility>

#include "config/removal_kind.h"
#include "log/h5_handle.h"
#include "log/h5_util.h"
#include "log/run_log_schema.h"
#include "util/build_info.h"
#include "util/debug_kill.h"
#include "util/error.h"
#include "util/files.h"

namespace lnfree::runlog {
namespace {

using h5::check;
using h5::checked;
using h5::Handle;
using h5::QuietErrors;
using namespace h5;  // h5_util: types, file access, links, attributes

// ~1024 rows per chunk (appends touch one cached chunk; 1000 appends take milliseconds), fewer
// rows when a row is wide so that one chunk stays near 64 KiB.
constexpr hsize_t kMaxChunkRows = 1024;
// The fill value of every "step" dataset: what a row reads back whose extent reached the file but
// whose chunk never did (a write that failed with ENOSPC). A resume stops at such a row instead of
// keeping a row of zeros.
constexpr std::int64_t kUnwrittenStep = std::numeric_limits<std::int64_t>::min();
constexpr hsize_t kTargetChunkBytes = 64 * 1024;
// Rows of every column of one table, as raw bytes in memory layout (kept across a resume).
struct TableRows {
  hsize_t rows = 0;
  std::vector<std::vector<unsigned char>> columns;
};

std::size_t element_size(Element element) {
  switch (element) {
    case Element::kInt64:
    case Element::kFloat64:
      return 8;
    case Element::kInt8:
      return 1;
    case Element::kString:
      return kKindBytes;
  }
  return 0;
}

Handle memory_type(Element element) {
  switch (element) {
    case Element::kInt64:
      return Handle(H5Tcopy(H5T_NATIVE_INT64), H5Tclose);
    case Element::kFloat64:
      return Handle(H5Tcopy(H5T_NATIVE_DOUBLE), H5Tclose);
    case Element::kInt8:
      return Handle(H5Tcopy(H5T_NATIVE_INT8), H5Tclose);
    case Element::kString:
      return fixed_string_type(kKindBytes);
  }
  return Handle();
}

// Explicit little-endian file types, so the file is the same on any writer.
hid_t file_type(Element element, const Handle& string_type) {
  switch (element) {
    case Element::kInt64:
      return H5T_STD_I64LE;
    case Element::kFloat64:
      return H5T_IEEE_F64LE;
    case Element::kInt8:
      return H5T_STD_I8LE;
    case Element::kString:
      return string_type.get();
  }
  return H5I_INVALID_HID;
}

std::size_t row_bytes(const ColumnDef& def) {
  std::size_t bytes = element_size(def.element);
  for (hsize_t d : def.row_shape) bytes *= d;
  return bytes;
}

std::string shape_text(const std::vector<hsize_t>& dims) {
  std::string text = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
  return text + "]";
}

// One appendable dataset: unlimited first (row) dimension, chunked.
class Column {
 public:
  Column(Handle dataset, const ColumnDef& def, hsize_t rows)
      : dataset_(std::move(dataset)),
        type_(memory_type(def.element)),
        row_shape_(def.row_shape),
        rows_(rows) {}

  hsize_t rows() const { return rows_; }
  hid_t dataset() const { return dataset_.get(); }

  void append(const void* data, hsize_t n, const std::string& file) {
    if (n == 0) return;
    std::vector<hsize_t> dims{rows_ + n};
    dims.insert(dims.end(), row_shape_.begin(), row_shape_.end());
    check(H5Dset_extent(dataset_.get(), dims.data()), file, "cannot extend dataset");
    Handle file_space = checked(H5Dget_space(dataset_.get()), H5Sclose, file, "H5Dget_space");
    std::vector<hsize_t> start(dims.size(), 0);
    start[0] = rows_;
    std::vector<hsize_t> count = dims;
    count[0] = n;
    check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
          file, "H5Sselect_hyperslab");
    Handle memory_space = checked(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr),
                                  H5Sclose, file, "H5Screate_simple");
    check(H5Dwrite(dataset_.get(), type_.get(), memory_space.get(), file_space.get(), H5P_DEFAULT, data),
          file, "cannot write rows");
    rows_ += n;
  }

  void flush(const std::string& file) { check(H5Dflush(dataset_.get()), file, "H5Dflush"); }

 private:
  Handle dataset_;
  Handle type_;
  std::vector<hsize_t> row_shape_;
  hsize_t rows_ = 0;
};

class Table {
 public:
  Table(std::string group, std::vector<Column> columns, std::int64_t last_step)
      : group_(std::move(group)), columns_(std::move(columns)), last_step_(last_step) {}

  // One row: values[i] points at the row of columns[i]; all columns are written, then flushed.
  void append(std::int64_t step, const std::vector<const void*>& values, const std::string& file) {
    if (step < last_step_) {
      fail("{}: {}: step {} follows step {}; steps must not decrease", file, group_, step, last_step_);
    }
    for (std::size_t i = 0; i < columns_.size(); ++i) {
      columns_[i].append(values[i], 1, file);
      if (i == 0 && group_ == "/train") {
        columns_[0].flush(file);
        debug_kill_point("log-append", step);  // tests/faults: a row half on disk
      }
    }
    for (auto& column : columns_) column.flush(file);
    last_step_ = step;
  }

  hsize_t rows() const { return columns_.front().rows(); }

 private:
  std::string group_;
  std::vector<Column> columns_;
  std::int64_t last_step_;
};

// --- spec -----------------------------------------------------------------------------------

bool valid_set_name(const std::string& name) {
  if (name.empty() || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

void validate_spec(const RunLogSpec& spec) {
  if (spec.path.empty()) fail("run log: RunLogSpec.path is empty");
  const std::string& path = spec.path;
  for (const char* name : kRequiredStrings) {
    if (!spec.string_attributes.count(name))
      fail("{}: run log spec: string attribute '{}' is required", path, name);
  }
  for (const char* name : kModelInts) {
    if (!spec.int_attributes.count(name))
      fail("{}: run log spec: integer attribute '{}' is required", path, name);
  }
  std::set<std::string> names;
  auto claim = [&](const std::string& name) {
    for (const char* reserved : kReserved) {
      if (name == reserved)
        fail("{}: run log spec: attribute '{}' is reserved (RunLog writes it)", path, name);
    }
    if (name.empty()) fail("{}: run log spec: an attribute name is empty", path);
    if (!names.insert(name).second) fail("{}: run log spec: attribute '{}' is given twice", path, name);
  };
  for (const auto& [name, value] : spec.string_attributes) claim(name);
  for (const auto& [name, value] : spec.int_attributes) claim(name);
  for (const auto& [name, value] : spec.float_attributes) claim(name);
  if (spec.int_attributes.at("n_layer") < 0) fail("{}: run log spec: n_layer must not be negative", path);

  std::set<std::string> sets;
  for (const auto& set : spec.eval_sets) {
    if (!valid_set_name(set))
      fail("{}: run log spec: eval set name '{}': expected [A-Za-z0-9_.-]+", path, set);
    if (!sets.insert(set).second) fail("{}: run log spec: eval set '{}' is given twice", path, set);
  }
  if (spec.ln_names.empty()) fail("{}: run log spec: ln_names is empty", path);
  std::set<std::string> lns;
  for (const auto& name : spec.ln_names) {
    if (name.empty()) fail("{}: run log spec: an LN name is empty", path);
    if (!lns.insert(name).second) fail("{}: run log spec: LN name '{}' is given twice", path, name);
  }
}

// --- building and opening ------------------------------------------------------------------

void write_fixed_string(hid_t dataset, std::size_t bytes, const std::string& value, const std::string& file) {
  std::vector<char> buffer(bytes, '\0');
  std::size_t n = std::min(bytes, value.size());
  // Never cut a UTF-8 sequence: back up to the start of the character that does not fit.
  while (n > 0 && n < value.size() && (static_cast<unsigned char>(value[n]) & 0xC0) == 0x80) --n;
  std::memcpy(buffer.data(), value.data(), n);
  Handle type = fixed_string_type(bytes);
  check(H5Dwrite(dataset, type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()), file,
        "cannot write status");
}

void create_status_dataset(hid_t file_id, const char* name, std::size_t bytes, const std::string& value,
                           const std::string& file) {
  Handle type = fixed_string_type(bytes);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle dcpl = checked(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, file, "H5Pcreate");
  // Compact: the value lives in the object header, which an SWMR reader's refresh() re-reads.
  check(H5Pset_layout(dcpl.get(), H5D_COMPACT), file, "H5Pset_layout");
  Handle dataset =
      checked(H5Dcreate2(file_id, name, type.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
              H5Dclose, file, "cannot create status dataset");
  write_fixed_string(dataset.get(), bytes, value, file);
}

Handle create_column(hid_t group, const ColumnDef& def, const std::string& file) {
  std::vector<hsize_t> dims{0}, max_dims{H5S_UNLIMITED}, chunk{0};
  dims.insert(dims.end(), def.row_shape.begin(), def.row_shape.end());
  max_dims.insert(max_dims.end(), def.row_shape.begin(), def.row_shape.end());
  chunk.insert(chunk.end(), def.row_shape.begin(), def.row_shape.end());
  chunk[0] = std::clamp<hsize_t>(kTargetChunkBytes / row_bytes(def), 1, kMaxChunkRows);
  const int rank = static_cast<int>(dims.size());
  Handle space =
      checked(H5Screate_simple(rank, dims.data(), max_dims.data()), H5Sclose, file, "H5Screate_simple");
  Handle dcpl = checked(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, file, "H5Pcreate");
  check(H5Pset_chunk(dcpl.get(), rank, chunk.data()), file, "H5Pset_chunk");
  if (def.name == "step")
    check(H5Pset_fill_value(dcpl.get(), H5T_NATIVE_INT64, &kUnwrittenStep), file, "H5Pset_fill_value");
  Handle string_type = fixed_string_type(kKindBytes);
  return checked(H5Dcreate2(group, def.name.c_str(), file_type(def.element, string_type), space.get(),
                            H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                 H5Dclose, file, "cannot create dataset");
}

// Writes the complete file (attributes, empty or pre-filled tables, status "running") at `target`.
// Error messages name `file`, the run log's final path.
void build_file(const std::string& target, const std::string& file, const RunLogSpec& spec,
                const std::vector<TableDef>& defs, const std::vector<TableRows>* kept) {
  Handle fapl = file_access(file);
  Handle h5file = checked(H5Fcreate(target.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose, file,
                          "cannot create file");
  const hid_t root = h5file.get();
  for (const auto& [name, value] : spec.string_attributes) write_attribute(root, name, value, file);
  for (const auto& [name, value] : spec.int_attributes) write_attribute(root, name, value, file);
  for (const auto& [name, value] : spec.float_attributes) write_attribute(root, name, value, file);
  write_attribute(root, "schema_version", kSchemaVersion, file);
  write_attribute(root, "lnfree_version", build_version(), file);
  write_attribute(root, "git_commit", build_git_commit(), file);

  Handle eval = checked(H5Gcreate2(root, "/eval", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose, file,
                        "cannot create group");
  Handle lcpl = checked(H5Pcreate(H5P_LINK_CREATE), H5Pclose, file, "H5Pcreate");
  check(H5Pset_create_intermediate_group(lcpl.get(), 1), file, "H5Pset_create_intermediate_group");
  for (std::size_t t = 0; t < defs.size(); ++t) {
    const TableDef& def = defs[t];
    Handle group = checked(H5Gcreate2(root, def.group.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT),
                           H5Gclose, file, "cannot create group");
    if (def.group == "/ln") write_attribute(group.get(), "names", spec.ln_names, file);
    for (std::size_t c = 0; c < def.columns.size(); ++c) {
      Column column(create_column(group.get(), def.columns[c], file), def.columns[c], 0);
      if (def.group == "/ln" && def.columns[c].name == "fake") {
        write_attribute(column.dataset(), "paths", std::vector<std::string>{"main", "v"}, file);
      }
      if (kept != nullptr) column.append((*kept)[t].columns[c].data(), (*kept)[t].rows, file);
    }
  }
  create_status_dataset(root, "/status", kStatusBytes, status_name(RunStatus::kRunning), file);
  create_status_dataset(root, "/status_message", kMessageBytes, "", file);
  check(h5file.close(), file, "cannot close file");
}

// Reads every column of `def` from an existing run log and keeps the rows before `resume_step`.
TableRows read_kept_rows(hid_t h5file, const TableDef& def, std::int64_t resume_step,
                         const std::string& file) {
  TableRows kept;
  hsize_t complete_rows = std::numeric_limits<hsize_t>::max();
  for (const ColumnDef& column : def.columns) {
    const std::string name = def.group + "/" + column.name;
    if (!link_exists(h5file, name)) fail("{}: dataset '{}' is missing", file, name);
    Handle dataset =
        checked(H5Dopen2(h5file, name.c_str(), H5P_DEFAULT), H5Dclose, file, "cannot open dataset");
    Handle space = checked(H5Dget_space(dataset.get()), H5Sclose, file, "H5Dget_space");
    std::vector<hsize_t> dims(1 + column.row_shape.size());
    if (H5Sget_simple_extent_ndims(space.get()) != static_cast<int>(dims.size())) {
      fail("{}: dataset '{}': expected {} dimensions", file, name, dims.size());
    }
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    if (!std::equal(column.row_shape.begin(), column.row_shape.end(), dims.begin() + 1)) {
      fail("{}: dataset '{}': expected rows of shape {}, got {}", file, name, shape_text(column.row_shape),
           shape_text(std::vector<hsize_t>(dims.begin() + 1, dims.end())));
    }
    std::vector<unsigned char> bytes(dims[0] * row_bytes(column));
    Handle type = memory_type(column.element);
    if (dims[0] > 0) {
      check(H5Dread(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()), file,
            "cannot read dataset");
    }
    // A writer that died inside an append can leave one column a row longer than the others.
    complete_rows = std::min(complete_rows, dims[0]);
    kept.columns.push_back(std::move(bytes));
  }
  const auto* steps = reinterpret_cast<const std::int64_t*>(kept.columns[0].data());
  while (kept.rows < complete_rows && steps[kept.rows] != kUnwrittenStep && steps[kept.rows] < resume_step)
    ++kept.rows;
  for (std::size_t c = 0; c < def.columns.size(); ++c)
    kept.columns[c].resize(kept.rows * row_bytes(def.columns[c]));
  return kept;
}

herr_t collect_link_name(hid_t, const char* name, const H5L_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}

// Reads what a resumed run keeps, after checking that the file belongs to the same model.
std::vector<TableRows> read_resume_rows(const RunLogSpec& spec, const std::vector<TableDef>& defs,
                                        std::int64_t resume_step) {
  const std::string& file = spec.path;
  Handle fapl = file_access(file);
  // SWMR-read also opens the file of a writer that crashed (its superblock still says "open for
  // writing", which makes a plain open fail); the data up to the last flush is intact.
  hid_t id = H5Fopen(file.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl.get());
  if (id < 0)
    fail("{}: cannot resume the run log: not a readable HDF5 file: {}", file, h5::take_error_message());
  Handle h5file(id, H5Fclose);
  const hid_t root = h5file.get();
  std::int64_t version = read_int_attribute(root, "/", "schema_version", file);
  if (version != kSchemaVersion) {
    fail("{}: root attribute 'schema_version': expected {}, got {}", file, kSchemaVersion, version);
  }
  for (const char* name : kModelInts) {
    std::int64_t in_file = read_int_attribute(root, "/", name, file);
    std::int64_t in_spec = spec.int_attributes.at(name);
    if (in_file != in_spec) {
      fail("{}: root attribute '{}': the log has {}, the resumed run has {}", file, name, in_file, in_spec);
    }
  }
  if (!link_exists(root, "/ln") || !link_exists(root, "/eval"))
    fail("{}: group '/ln' or '/eval' is missing", file);
  {
    Handle ln = checked(H5Gopen2(root, "/ln", H5P_DEFAULT), H5Gclose, file, "cannot open group");
    std::vector<std::string> names = read_strings_attribute(ln.get(), "/ln", "names", file);
    if (names != spec.ln_names) {
      fail("{}: /ln attribute 'names': the log has {} LNs ({}...), the resumed run has {} ({}...)", file,
           names.size(), names.empty() ? "" : names.front(), spec.ln_names.size(), spec.ln_names.front());
    }
  }
  std::vector<std::string> sets_in_file;
  {
    Handle eval = checked(H5Gopen2(root, "/eval", H5P_DEFAULT), H5Gclose, file, "cannot open group");
    check(H5Literate(eval.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_link_name, &sets_in_file), file,
          "cannot list /eval");
  }
  for (const auto& set : sets_in_file) {
    if (std::find(spec.eval_sets.begin(), spec.eval_sets.end(), set) == spec.eval_sets.end()) {
      fail("{}: eval set '{}' is in the log but not in the resumed run's eval sets", file, set);
    }
  }
  std::vector<TableRows> kept;
  for (const auto& def : defs) {
    // A new eval set, or /rollbacks in a log written before it existed, starts empty.
    const bool new_group =
        (def.group.rfind("/eval/", 0) == 0 || def.group == "/rollbacks") && !link_exists(root, def.group);
    if (new_group) {
      kept.push_back(TableRows{0, std::vector<std::vector<unsigned char>>(def.columns.size())});
    } else {
      kept.push_back(read_kept_rows(root, def, resume_step, file));
    }
  }
  check(h5file.close(), file, "cannot close file");
  return kept;
}

}  // namespace

const char* status_name(RunStatus status) {
  switch (status) {
    case RunStatus::kRunning:
      return "running";
    case RunStatus::kComplete:
      return "complete";
    case RunStatus::kDiverged:
      return "diverged";
    case RunStatus::kFailed:
      return "failed";
    case RunStatus::kPreempted:
      return "preempted";
  }
  return "unknown";
}

struct RunLog::Impl {
  std::string path;
  std::int64_t n_layer = 0;
  std::size_t n_ln = 0;
  // Declared first so that it is closed last, after every dataset.
  Handle file;
  std::vector<Table> tables;  // in table_defs order: train, eval sets..., events, ln, rollbacks
  std::map<std::string, std::size_t> eval_table;
  std::size_t events_table = 0;
  std::size_t ln_table = 0;
  std::size_t rollbacks_table = 0;
  Handle status;
  Handle status_message;

  // Opens the finished file for SWMR writing.
  Impl(const RunLogSpec& spec, const std::vector<TableDef>& defs)
      : path(spec.path), n_layer(spec.int_attributes.at("n_layer")), n_ln(spec.ln_names.size()) {
    Handle fapl = file_access(path);
    file = checked(H5Fopen(path.c_str(), H5F_ACC_RDWR | H5F_ACC_SWMR_WRITE, fapl.get()), H5Fclose, path,
                   "cannot open for SWMR writing");
    for (const TableDef& def : defs) {
      std::vector<Column> columns;
      for (const ColumnDef& column_def : def.columns) {
        const std::string name = def.group + "/" + column_def.name;
        Handle dataset =
            checked(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), H5Dclose, path, "cannot open dataset");
        Handle space = checked(H5Dget_space(dataset.get()), H5Sclose, path, "H5Dget_space");
        std::vector<hsize_t> dims(1 + column_def.row_shape.size());
        H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
        columns.emplace_back(std::move(dataset), column_def, dims[0]);
      }
      // Steps continue from the last kept row.
      std::int64_t last_step = std::numeric_limits<std::int64_t>::min();
      if (columns[0].rows() > 0) last_step = read_last_step(columns[0]);
      tables.emplace_back(def.group, std::move(columns), last_step);
      if (def.group.rfind("/eval/", 0) == 0) eval_table[def.group.substr(6)] = tables.size() - 1;
    }
    events_table = tables.size() - 3;
    ln_table = tables.size() - 2;
    rollbacks_table = tables.size() - 1;
    status = checked(H5Dopen2(file.get(), "/status", H5P_DEFAULT), H5Dclose, path, "cannot open dataset");
    status_message =
        checked(H5Dopen2(file.get(), "/status_message", H5P_DEFAULT), H5Dclose, path, "cannot open dataset");
  }

  std::int64_t read_last_step(const Column& column) const {
    return read_int64_row(column.dataset(), column.rows() - 1, path);
  }

  void require_open() const {
    if (!file.valid()) fail("{}: the run log is already finished; nothing more can be appended", path);
  }

  void close() {
    tables.clear();
    status.reset();
    status_message.reset();
    check(file.close(), path, "cannot close file");
  }
};

RunLog::RunLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RunLog::RunLog(const RunLogSpec& spec) {
  validate_spec(spec);
  if (std::filesystem::exists(spec.path)) {
    fail("{}: a run log already exists here; resume it (open_for_resume) or remove it", spec.path);
  }
  QuietErrors quiet;
  auto defs = table_defs(spec);
  write_atomically(spec.path,
                   [&](const std::string& tmp) { build_file(tmp, spec.path, spec, defs, nullptr); });
  impl_ = std::make_unique<Impl>(spec, defs);
}

RunLog RunLog::open_for_resume(const RunLogSpec& spec, std::int64_t resume_step) {
  validate_spec(spec);
  if (!std::filesystem::exists(spec.path))
    fail("{}: cannot resume the run log: the file does not exist", spec.path);
  QuietErrors quiet;
  auto defs = table_defs(spec);
  std::vector<TableRows> kept = read_resume_rows(spec, defs, resume_step);
  write_atomically(spec.path, [&](const std::string& tmp) { build_file(tmp, spec.path, spec, defs, &kept); });
  spdlog::info("{}: run log resumed before step {}: kept {} train rows", spec.path, resume_step,
               kept[0].rows);
  return RunLog(std::make_unique<Impl>(spec, defs));
}

RunLog::~RunLog() {
  if (impl_ && impl_->file.valid()) {
    QuietErrors quiet;
    impl_->tables.clear();
    impl_->status.reset();
    impl_->status_message.reset();
    impl_->file.reset();
  }
}

RunLog::RunLog(RunLog&&) noexcept = default;
RunLog& RunLog::operator=(RunLog&&) noexcept = default;

const std::string& RunLog::path() const { return impl_->path; }

void RunLog::append_train(const TrainRow& row) {
  impl_->require_open();
  QuietErrors quiet;
  impl_->tables[0].append(row.step,
                          {&row.step, &row.tokens, &row.loss, &row.ce_loss, &row.aux_loss, &row.lr,
                           &row.grad_norm, &row.tokens_per_s},
                          impl_->path);
}

void RunLog::append_eval(const std::string& set, const EvalRow& row) {
  impl_->require_open();
  auto found = impl_->eval_table.find(set);
  if (found == impl_->eval_table.end()) {
    fail("{}: append_eval: eval set '{}' is not one of the RunLogSpec's eval sets", impl_->path, set);
  }
  QuietErrors quiet;
  impl_->tables[found->second].append(row.step, {&row.step, &row.tokens, &row.loss}, impl_->path);
}

void RunLog::append_event(const EventRow& row) {
  impl_->require_open();
  if (!config::parse_removal_kind(row.kind)) {
    std::string known;
    for (auto name : config::kRemovalKindNames) known += fmt::format("{}{}", known.empty() ? "" : " ", name);
    fail("{}: append_event: kind '{}': expected one of {}", impl_->path, row.kind, known);
  }
  if (row.layer < -1 || row.layer >= impl_->n_layer) {
    fail("{}: append_event: layer {}: expected -1 (whole model) or 0..{}", impl_->path, row.layer,
         impl_->n_layer - 1);
  }
  char kind[kKindBytes] = {};
  std::memcpy(kind, row.kind.data(), row.kind.size());
  QuietErrors quiet;
  impl_->tables[impl_->events_table].append(row.step, {&row.step, &row.tokens, kind, &row.layer},
                                            impl_->path);
}

void RunLog::append_rollback(const RollbackRow& row) {
  impl_->require_open();
  QuietErrors quiet;
  impl_->tables[impl_->rollbacks_table].append(
      row.step, {&row.step, &row.tokens, &row.diverged_step, &row.lr_scale, &row.rollbacks}, impl_->path);
}

void RunLog::append_ln(std::int64_t step, const std::vector<double>& sigmas,
                       const std::vector<LnPathState>& fake) {
  impl_->require_open();
  if (sigmas.size() != impl_->n_ln || fake.size() != impl_->n_ln) {
    fail("{}: append_ln: expected {} sigmas and {} path states (one per LN), got {} and {}", impl_->path,
         impl_->n_ln, impl_->n_ln, sigmas.size(), fake.size());
  }
  std::vector<std::int8_t> flags;
  flags.reserve(2 * fake.size());
  for (const auto& state : fake) {
    flags.push_back(state.main_fake ? 1 : 0);
    flags.push_back(state.v_fake ? 1 : 0);
  }
  QuietErrors quiet;
  impl_->tables[impl_->ln_table].append(step, {&step, sigmas.data(), flags.data()}, impl_->path);
}

bool RunLog::is_open() const { return impl_ && impl_->file.valid(); }

void RunLog::finish(RunStatus status, const std::string& message) {
  impl_->require_open();
  if (status == RunStatus::kRunning) fail("{}: finish: the final status cannot be 'running'", impl_->path);
  QuietErrors quiet;
  // The message first: a reader that sees the final status also sees its message.
  write_fixed_string(impl_->status_message.get(), kMessageBytes, message, impl_->path);
  check(H5Dflush(impl_->status_message.get()), impl_->path, "H5Dflush");
  write_fixed_string(impl_->status.get(), kStatusBytes, status_name(status), impl_->path);
  check(H5Dflush(impl_->status.get()), impl_->path, "H5Dflush");
  impl_->close();
}

}  // namespace lnfree::runlog
