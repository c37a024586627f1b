// The run folder, in one place: the name of everything a training run writes there, which
// checkpoint is the newest complete one, and the state the run is in. The trainer, the checkpoint
// writer, `--model RUN`, the study plan and runner and `lnfree status` (which the SLURM scripts
// ask) all go through it.
//
//   RUN/config.toml            the resolved config, written when the run starts
//   RUN/run.h5                 the run log (docs/run-log.md), its status included
//   RUN/.lock                  held by the one process writing the folder (util/run_lock.h)
//   RUN/step-NNNNNN/           a checkpoint: the state before step NNNNNN; complete once DONE is in it
//   RUN/.step-NNNNNN.tmp-PID/  a checkpoint being written by process PID (renamed when complete)
//   RUN/DIVERGED               the message of a run that stopped as diverged
//   RUN/final/                 the Hugging Face folder of a complete run
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "log/run_log.h"

namespace lnfree::run_folder {

inline constexpr const char* kConfigFile = "config.toml";
inline constexpr const char* kLogFile = "run.h5";
inline constexpr const char* kDivergedFile = "DIVERGED";
inline constexpr const char* kFinalFolder = "final";
inline constexpr const char* kDoneFile = "DONE";

std::string config_path(const std::string& run);
std::string log_path(const std::string& run);
std::string diverged_path(const std::string& run);
std::string final_path(const std::string& run);

// "step-000042", and RUN/step-000042; its DONE file.
std::string checkpoint_name(std::int64_t step);
std::string checkpoint_path(const std::string& run, std::int64_t step);
std::string done_path(const std::string& checkpoint_folder);
// RUN/.step-000042.tmp-PID, where process `pid` assembles that checkpoint.
std::string partial_checkpoint_path(const std::string& run, std::int64_t step, long pid);
// The partial checkpoint folders in `run` and the PID that was writing each.
std::vector<std::pair<std::string, long>> partial_checkpoints(const std::string& run);

// The complete checkpoints (step-NNNNNN/ holding DONE), oldest first, and the newest of them.
std::vector<std::pair<std::int64_t, std::string>> complete_checkpoints(const std::string& run);
std::optional<std::string> latest_checkpoint(const std::string& run);

// True when `dir` holds a run (config.toml or run.h5).
bool holds_run(const std::string& dir);

// The state of a run folder. `status` is run.h5's, except that a log still saying "running" with
// no process holding the lock is a run whose writer died (killed, or its node went down): failed;
// so is a folder with config.toml and neither run.h5 nor a writer.
struct Status {
  std::optional<runlog::RunStatus> status;  // none: no run here yet
  std::string message;                      // run.h5's message, or why the status was inferred
  bool writer_alive = false;                // a process holds RUN/.lock
  std::int64_t logged_steps = 0;            // rows in /train
  std::int64_t last_logged_step = -1;
  std::optional<std::string> latest_checkpoint;
};
Status status(const std::string& run);
// "complete", ..., or "none" (no run).
std::string status_word(const Status& status);

}  // namespace lnfree::run_folder
