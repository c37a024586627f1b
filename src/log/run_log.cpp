// The run log's writer (run_log.h): opening the built file for SWMR writing, appending rows and
// recording the final status. Building a new file is run_log_create's job, reading back what a
// resume keeps run_log_resume's, and the datasets both write run_log_columns'.
#include "log/run_log.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <filesystem>
#include <limits>
#include <utility>

#include "config/removal_kind.h"
#include "log/h5_handle.h"
#include "log/h5_util.h"
#include "log/run_log_columns.h"
#include "log/run_log_create.h"
#include "log/run_log_resume.h"
#include "log/run_log_schema.h"
#include "util/debug_kill.h"
#include "util/error.h"
#include "util/files.h"

namespace lnfree::runlog {
namespace {

using detail::Column;
using detail::TableRows;
using h5::check;
using h5::checked;
using h5::Handle;
using h5::QuietErrors;
using namespace h5;  // h5_util: file access, rows

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
      : path(spec.path), n_layer(spec.int_attributes.at(attribute::kNLayer)), n_ln(spec.ln_names.size()) {
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
  detail::validate_spec(spec);
  if (std::filesystem::exists(spec.path)) {
    fail("{}: a run log already exists here; resume it (open_for_resume) or remove it", spec.path);
  }
  QuietErrors quiet;
  auto defs = table_defs(spec);
  write_atomically(spec.path,
                   [&](const std::string& tmp) { detail::build_file(tmp, spec.path, spec, defs, nullptr); });
  impl_ = std::make_unique<Impl>(spec, defs);
}

RunLog RunLog::open_for_resume(const RunLogSpec& spec, std::int64_t resume_step) {
  detail::validate_spec(spec);
  if (!std::filesystem::exists(spec.path))
    fail("{}: cannot resume the run log: the file does not exist", spec.path);
  QuietErrors quiet;
  auto defs = table_defs(spec);
  std::vector<TableRows> kept = detail::read_resume_rows(spec, defs, resume_step);
  write_atomically(spec.path,
                   [&](const std::string& tmp) { detail::build_file(tmp, spec.path, spec, defs, &kept); });
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
  detail::write_fixed_string(impl_->status_message.get(), kMessageBytes, message, impl_->path);
  check(H5Dflush(impl_->status_message.get()), impl_->path, "H5Dflush");
  detail::write_fixed_string(impl_->status.get(), kStatusBytes, status_name(status), impl_->path);
  check(H5Dflush(impl_->status.get()), impl_->path, "H5Dflush");
  impl_->close();
}

}  // namespace lnfree::runlog
