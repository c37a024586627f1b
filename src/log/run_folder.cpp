#include "log/run_folder.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <regex>

#include "util/error.h"
#include "util/run_lock.h"

namespace fs = std::filesystem;

namespace lnfree::run_folder {
namespace {

std::string in(const std::string& run, const std::string& name) { return (fs::path(run) / name).string(); }

}  // namespace

std::string config_path(const std::string& run) { return in(run, kConfigFile); }
std::string log_path(const std::string& run) { return in(run, kLogFile); }
std::string diverged_path(const std::string& run) { return in(run, kDivergedFile); }
std::string final_path(const std::string& run) { return in(run, kFinalFolder); }

std::string checkpoint_name(std::int64_t step) { return fmt::format("step-{:06d}", step); }
std::string checkpoint_path(const std::string& run, std::int64_t step) {
  return in(run, checkpoint_name(step));
}
std::string done_path(const std::string& checkpoint_folder) { return in(checkpoint_folder, kDoneFile); }

std::string partial_checkpoint_path(const std::string& run, std::int64_t step, long pid) {
  return in(run, fmt::format(".{}.tmp-{}", checkpoint_name(step), pid));
}

std::vector<std::pair<std::string, long>> partial_checkpoints(const std::string& run) {
  std::vector<std::pair<std::string, long>> found;
  if (!fs::is_directory(run)) return found;
  static const std::regex pattern(R"(\.step-[0-9]+\.tmp-([0-9]+))");
  for (const auto& entry : fs::directory_iterator(run)) {
    std::smatch match;
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && std::regex_match(name, match, pattern))
      found.emplace_back(entry.path().string(), std::stol(match[1].str()));
  }
  std::sort(found.begin(), found.end());
  return found;
}

std::vector<std::pair<std::int64_t, std::string>> complete_checkpoints(const std::string& run) {
  std::vector<std::pair<std::int64_t, std::string>> found;
  if (!fs::is_directory(run)) return found;
  static const std::regex pattern("step-([0-9]+)");
  for (const auto& entry : fs::directory_iterator(run)) {
    std::smatch match;
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && std::regex_match(name, match, pattern) && fs::exists(done_path(entry.path())))
      found.emplace_back(std::stoll(match[1].str()), entry.path().string());
  }
  std::sort(found.begin(), found.end());
  return found;
}

std::optional<std::string> latest_checkpoint(const std::string& run) {
  auto all = complete_checkpoints(run);
  if (all.empty()) return std::nullopt;
  return all.back().second;
}

bool holds_run(const std::string& dir) { return fs::exists(config_path(dir)) || fs::exists(log_path(dir)); }

Status status(const std::string& run) {
  Status s;
  s.writer_alive = RunLock::is_held(run);
  s.latest_checkpoint = latest_checkpoint(run);
  if (!fs::exists(log_path(run))) {
    // A run whose start-up is under way (or that failed before its log) has no run.h5 yet.
    if (s.writer_alive) {
      s.status = runlog::RunStatus::kRunning;
      s.message = "starting: no run.h5 yet";
    } else if (fs::exists(config_path(run))) {
      s.status = runlog::RunStatus::kFailed;
      s.message = "the run started (config.toml) but its writer ended before it wrote run.h5";
    }
    return s;
  }
  const auto logged = runlog::read_logged_status(log_path(run));
  s.status = logged.status;
  s.message = logged.message;
  s.logged_steps = logged.train_rows;
  s.last_logged_step = logged.last_train_step;
  if (logged.status == runlog::RunStatus::kRunning && !s.writer_alive) {
    s.status = runlog::RunStatus::kFailed;
    s.message = fmt::format(
        "the writer died without recording an end (no process holds {}: killed, or its node went down); "
        "--resume continues from {}",
        in(run, RunLock::kFileName), s.latest_checkpoint.value_or("the start (no complete checkpoint)"));
  }
  return s;
}

std::string status_word(const Status& status) {
  return status.status ? runlog::status_name(*status.status) : "none";
}

}  // namespace lnfree::run_folder
