// The run log: one HDF5 file per training run (run.h5), written by rank 0 only, flushed after every
// append and readable while training goes on through HDF5's single-writer/multiple-reader mode
// (SWMR). The schema is documented in docs/run-log.md (root attribute schema_version = 1).
//
// SWMR forbids creating objects or attributes once writing has started, so every group, dataset
// and attribute is created up front from a RunLogSpec: the eval set names and the LayerNorm names
// (the columns of /ln/sigma) must be known when the log is opened.
//
// Crash safety: a new log or a resumed log is first built under a temporary name and renamed into
// place, so a failure while opening never leaves a damaged file under `path`; appends are ordered
// by SWMR so that the file stays readable if the writer dies between two steps.
//
// Not thread-safe (Debian's HDF5 is built without thread safety): one thread of one process writes.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lnfree::runlog {

inline constexpr std::int64_t kSchemaVersion = 1;

// What the writer must know before the first append.
struct RunLogSpec {
  std::string path;
  // Root attributes. Required: strings "config" (the resolved config TOML text) and "mode"; integers
  // "n_layer", "n_embd", "n_head", "params_total", "params_non_embedding". Any other names are
  // written too. "schema_version", "lnfree_version" and "git_commit" are reserved: RunLog writes
  // them itself (from the build).
  std::map<std::string, std::string> string_attributes;
  std::map<std::string, std::int64_t> int_attributes;
  std::map<std::string, double> float_attributes;
  // One group /eval/<name> per set; names are [A-Za-z0-9_.-]+ and unique.
  std::vector<std::string> eval_sets;
  // LayerNorm names in column order of /ln/sigma, e.g. "h.0.ln_1", "h.0.ln_2", ..., "ln_f".
  std::vector<std::string> ln_names;
};

struct TrainRow {
  std::int64_t step = 0;
  std::int64_t tokens = 0;  // tokens seen so far (all ranks)
  double loss = 0;          // ce_loss + aux_loss
  double ce_loss = 0;
  double aux_loss = 0;
  double lr = 0;
  double grad_norm = 0;
  double tokens_per_s = 0;
};

struct EvalRow {
  std::int64_t step = 0;
  std::int64_t tokens = 0;
  double loss = 0;
};

struct EventRow {
  std::int64_t step = 0;
  std::int64_t tokens = 0;
  std::string kind;         // a removal kind's name (config/removal_kind.h), stored in /events/kind
  std::int64_t layer = -1;  // -1 for whole-model events
};

// One rollback of optim.on_divergence = "rollback": after a non-finite value at `diverged_step`,
// the run went back to the checkpoint that follows `step` (the last step it kept; -1 for the
// checkpoint before step 0), with `tokens` seen, and trains from there with the learning rate
// multiplied by `lr_scale` (the product of every rollback's factor so far); `rollbacks` counts the
// rollbacks so far, this one included. Keyed by the last kept step, a row survives a resume from
// that checkpoint, and a rollback further back drops it with the rest of the abandoned history.
struct RollbackRow {
  std::int64_t step = 0;
  std::int64_t tokens = 0;
  std::int64_t diverged_step = 0;
  double lr_scale = 1.0;
  std::int64_t rollbacks = 0;
};

// Whether each path through one LayerNorm is real (normalizing) or fake (fixed sigma). "v" is the
// value path of an ln_1; LNs with a single consumer (ln_2, ln_f) record the same state in both.
struct LnPathState {
  bool main_fake = false;
  bool v_fake = false;
};

enum class RunStatus { kRunning, kComplete, kDiverged, kFailed, kPreempted };
inline constexpr std::array<RunStatus, 5> kAllRunStatuses = {RunStatus::kRunning, RunStatus::kComplete,
                                                             RunStatus::kDiverged, RunStatus::kFailed,
                                                             RunStatus::kPreempted};
// "running", "complete", "diverged", "failed", "preempted": the strings stored in /status.
// "failed": an error ended the run (the message says which); "preempted": a signal stopped it
// with a checkpoint, and --resume continues it.
const char* status_name(RunStatus status);
// The status whose name is `name`, or none.
std::optional<RunStatus> status_from_name(const std::string& name);

// What a run log says of its run, read without disturbing a live writer (SWMR read).
struct LoggedStatus {
  RunStatus status = RunStatus::kRunning;
  std::string message;
  std::int64_t train_rows = 0;
  std::int64_t last_train_step = -1;  // -1: no row yet
};
LoggedStatus read_logged_status(const std::string& path);

class RunLog {
 public:
  // Creates spec.path (which must not exist yet) with every dataset empty and status "running".
  explicit RunLog(const RunLogSpec& spec);

  // Reopens the log of an interrupted run (also one whose writer crashed) and keeps, in every
  // group, the rows with step < resume_step, so that the continued run produces the same log as
  // an uninterrupted one. The file is rebuilt under a temporary name and renamed over `path` only
  // when complete. The spec must describe the same model (n_layer, n_embd, n_head, params_*, LN
  // names) and include every eval set that the file has; new eval sets (and a /rollbacks group
  // that a log of an older lnfree lacks) start empty. Root attributes
  // are taken from the spec; status returns to "running".
  static RunLog open_for_resume(const RunLogSpec& spec, std::int64_t resume_step);

  ~RunLog();  // closes the file; the status is left as it is ("running" unless finish() ran)
  RunLog(RunLog&&) noexcept;
  RunLog& operator=(RunLog&&) noexcept;
  RunLog(const RunLog&) = delete;
  RunLog& operator=(const RunLog&) = delete;

  // Each append writes one row to every dataset of its group and flushes them. Within a group,
  // steps must not decrease.
  void append_train(const TrainRow& row);
  void append_eval(const std::string& set, const EvalRow& row);
  void append_event(const EventRow& row);
  void append_rollback(const RollbackRow& row);
  // One sigma and one path state per LN, in spec.ln_names order.
  void append_ln(std::int64_t step, const std::vector<double>& sigmas, const std::vector<LnPathState>& fake);

  // Records the final status (not kRunning) and message (at most 1024 bytes, cut at a UTF-8
  // character boundary), then closes the file. Later appends fail.
  void finish(RunStatus status, const std::string& message);
  // False once finish() ran.
  bool is_open() const;

  const std::string& path() const;

 private:
  struct Impl;
  explicit RunLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lnfree::runlog
