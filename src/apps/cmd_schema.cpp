// lnfree schema: the names a run folder and its run.h5 use, as JSON, from the one place each is
// declared (log/run_log_schema.h, log/run_log.h, log/run_folder.h, config/removal_kind.h). analysis/ checks
// its own constants against this dump (tests/analysis/test_schema.py), so the two cannot drift apart.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <string>

#include "apps/command_registry.h"
#include "config/removal_kind.h"
#include "log/run_folder.h"
#include "log/run_log.h"
#include "log/run_log_schema.h"

namespace lnfree::apps {
namespace {

nlohmann::json schema() {
  nlohmann::json kinds = nlohmann::json::array();
  for (auto kind : config::kAllRemovalKinds)
    kinds.push_back({{"name", std::string(config::removal_kind_name(kind))},
                     {"removes_layer_norm", config::removes_layer_norm(kind)}});
  nlohmann::json statuses = nlohmann::json::array();
  for (auto s : runlog::kAllRunStatuses) statuses.push_back(runlog::status_name(s));
  // The tables of a log with one eval set ("SET") and one LN column: /ln's row shapes count the
  // LN columns of the run.
  runlog::RunLogSpec example;
  example.eval_sets = {"SET"};
  example.ln_names = {"LN"};
  nlohmann::json tables = nlohmann::json::array();
  for (const auto& table : runlog::table_defs(example)) {
    nlohmann::json columns = nlohmann::json::array();
    for (const auto& column : table.columns)
      columns.push_back({{"name", column.name},
                         {"type", runlog::element_name(column.element)},
                         {"row_shape", column.row_shape}});
    tables.push_back({{"group", table.group}, {"columns", columns}});
  }
  return {{"schema_version", runlog::kSchemaVersion},
          {"tables", tables},
          {"required_attributes", runlog::kRequiredStrings},
          {"model_attributes", runlog::kModelInts},
          {"run_attributes", runlog::kRunAttributes},
          {"statuses", statuses},
          {"removal_kinds", kinds},
          {"run_folder",
           {{"config", run_folder::kConfigFile},
            {"log", run_folder::kLogFile},
            {"diverged", run_folder::kDivergedFile},
            {"final", run_folder::kFinalFolder},
            {"done", run_folder::kDoneFile},
            {"checkpoint_example", run_folder::checkpoint_name(42)}}}};
}

RegisterCommand reg("schema", [](CLI::App& root) {
  auto* cmd = root.add_subcommand(
      "schema",
      "Print the run log's schema version, statuses, removal event kinds and run-folder names (JSON)");
  cmd->footer(
      "For readers of run folders and run.h5 files other than lnfree (analysis/ checks itself against "
      "it); docs/run-log.md describes every field.");
  cmd->callback([] { fmt::print("{}\n", schema().dump(1)); });
});

}  // namespace
}  // namespace lnfree::apps
