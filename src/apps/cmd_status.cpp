// lnfree status RUN_OR_STUDY: the state of one run folder, or of every run folder under a study
// folder (log/run_folder.h decides it: run.h5's status, and whether a process holds the lock).
// `--field NAME` prints one value of one run folder as plain text: the SLURM scripts (slurm/lib.sh)
// ask it instead of knowing the folder's layout.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "apps/command_registry.h"
#include "log/run_folder.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace lnfree::apps {
namespace {

struct StatusOptions {
  std::string path;
  bool json = false;
  std::string field;  // --field: one value of one run folder
};

// Every run folder at or under `root`, sorted; a run folder's own contents are not searched.
std::vector<std::string> find_runs(const std::string& root) {
  if (run_folder::holds_run(root)) return {root};
  std::vector<std::string> runs;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied);
       it != fs::recursive_directory_iterator(); ++it) {
    if (!it->is_directory()) continue;
    if (run_folder::holds_run(it->path().string())) {
      runs.push_back(it->path().string());
      it.disable_recursion_pending();
    }
  }
  std::sort(runs.begin(), runs.end());
  return runs;
}

nlohmann::json to_json(const std::string& run, const run_folder::Status& s) {
  return {
      {"run", run},
      {"status", run_folder::status_word(s)},
      {"message", s.message},
      {"writer_alive", s.writer_alive},
      {"logged_steps", s.logged_steps},
      {"last_logged_step", s.last_logged_step},
      {"latest_checkpoint", s.latest_checkpoint ? nlohmann::json(*s.latest_checkpoint) : nlohmann::json()}};
}

// The names --field accepts: the keys of a run's JSON object, so that the two never disagree.
std::vector<std::string> field_names() {
  const nlohmann::json example = to_json("", run_folder::Status{});  // items() refers into it
  std::vector<std::string> names;
  for (const auto& item : example.items()) names.push_back(item.key());
  return names;
}

// One value as a script reads it: strings bare, null (no checkpoint) as an empty line.
std::string plain(const nlohmann::json& value) {
  if (value.is_null()) return "";
  return value.is_string() ? value.get<std::string>() : value.dump();
}

RegisterCommand reg("status", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("status",
                                  "Show whether a run (or every run of a study) is running, complete, "
                                  "diverged, failed or preempted");
  auto options = std::make_shared<StatusOptions>();
  cmd->add_option("path", options->path, "A run folder (lnfree train --out), or a folder of runs (a study)")
      ->required();
  auto* json = cmd->add_flag("--json", options->json, "Print JSON: one object per run, in a list");
  cmd->add_option(
         "--field", options->field,
         "Print one value of the run folder `path` as plain text (for scripts; null as an empty line). "
         "`path` is taken as one run folder, not searched: one that holds no run, or does not exist "
         "yet, has status 'none'")
      ->check(CLI::IsMember(field_names()))
      ->excludes(json);
  cmd->footer(
      "Statuses: running (a process holds the run folder's lock), complete, diverged, preempted (stopped\n"
      "by a signal or --stop-at with a checkpoint; --resume continues it), failed (an error ended it, or\n"
      "its writer died without recording an end: killed, or its node went down; --resume continues from\n"
      "the newest complete checkpoint), none (--field only: no run in `path` yet).\n"
      "Scripts: `lnfree status RUN --field status` prints the word alone (slurm/lib.sh asks it whether a\n"
      "run completed or diverged). Read-only: safe while runs are writing.");
  cmd->callback([options] {
    if (!options->field.empty()) {
      fmt::print("{}\n", plain(to_json(options->path, run_folder::status(options->path)).at(options->field)));
      return;
    }
    if (!fs::is_directory(options->path))
      fail("{}: not a folder (expected a run folder or a study folder)", options->path);
    const auto runs = find_runs(options->path);
    if (runs.empty())
      fail("{}: holds no run folder (none with config.toml or run.h5 at or below it)", options->path);
    nlohmann::json all = nlohmann::json::array();
    std::map<std::string, int> counts;
    for (const auto& run : runs) {
      const auto s = run_folder::status(run);
      const std::string word = run_folder::status_word(s);
      ++counts[word];
      if (options->json) {
        all.push_back(to_json(run, s));
        continue;
      }
      const std::string where = runs.size() == 1 ? run : fs::relative(run, options->path).string();
      std::string line = fmt::format("{:<10} {}  {} steps logged", word, where, s.logged_steps);
      if (s.latest_checkpoint)
        line += fmt::format(", newest checkpoint {}", fs::path(*s.latest_checkpoint).filename().string());
      if (!s.message.empty()) line += ": " + s.message;
      fmt::print("{}\n", line);
    }
    if (options->json) {
      fmt::print("{}\n", all.dump(1));
    } else if (runs.size() > 1) {
      std::string summary;
      for (const auto& [word, n] : counts)
        summary += fmt::format("{}{} {}", summary.empty() ? "" : ", ", n, word);
      fmt::print("{} runs: {}\n", runs.size(), summary);
    }
  });
});

}  // namespace
}  // namespace lnfree::apps
