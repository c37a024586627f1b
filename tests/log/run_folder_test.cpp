// The run folder's layout and status (log/run_folder.h): checkpoint discovery, partial checkpoints
// and the status a folder reports in each state a run can leave it in.
#include "log/run_folder.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "log/run_log.h"
#include "util/run_lock.h"

namespace fs = std::filesystem;
namespace rf = lnfree::run_folder;
using lnfree::runlog::RunStatus;

namespace {

fs::path fresh_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("lnfree_run_folder_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void touch(const fs::path& path) { std::ofstream(path) << "x\n"; }

lnfree::runlog::RunLogSpec spec(const fs::path& run) {
  lnfree::runlog::RunLogSpec s;
  s.path = rf::log_path(run.string());
  s.string_attributes = {{"config", "[run]\n"}, {"mode", "remove-ln"}};
  s.int_attributes = {
      {"n_layer", 1}, {"n_embd", 8}, {"n_head", 2}, {"params_total", 10}, {"params_non_embedding", 5}};
  s.ln_names = {"h.0.ln_1", "h.0.ln_2", "ln_f"};
  return s;
}

}  // namespace

TEST(RunFolder, CompleteCheckpointsAreTheStepFoldersWithDoneOldestFirst) {
  const auto run = fresh_dir("checkpoints");
  for (std::int64_t step : {12, 3, 40}) {
    fs::create_directories(rf::checkpoint_path(run.string(), step));
    if (step != 40) touch(rf::done_path(rf::checkpoint_path(run.string(), step)));  // 40: interrupted
  }
  fs::create_directories(rf::partial_checkpoint_path(run.string(), 48, 4242));
  const auto all = rf::complete_checkpoints(run.string());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].first, 3);
  EXPECT_EQ(all[1].second, (run / "step-000012").string());
  EXPECT_EQ(rf::latest_checkpoint(run.string()).value(), (run / "step-000012").string());
  const auto partial = rf::partial_checkpoints(run.string());
  ASSERT_EQ(partial.size(), 1u);
  EXPECT_EQ(partial[0].second, 4242);
  EXPECT_EQ(fs::path(partial[0].first).filename(), ".step-000048.tmp-4242");
  fs::remove_all(run);
}

TEST(RunFolder, StatusInEachStateARunCanLeave) {
  const auto run = fresh_dir("status");
  EXPECT_FALSE(rf::status(run.string()).status.has_value());  // nothing here yet
  EXPECT_EQ(rf::status_word(rf::status(run.string())), "none");
  {
    lnfree::RunLock lock(run.string());
    const auto s = rf::status(run.string());
    EXPECT_EQ(s.status, RunStatus::kRunning) << s.message;  // starting: the lock, no log yet
    EXPECT_TRUE(s.writer_alive);
  }
  touch(rf::config_path(run.string()));
  EXPECT_EQ(rf::status(run.string()).status, RunStatus::kFailed);  // started, ended before its log
  {
    lnfree::RunLock lock(run.string());
    lnfree::runlog::RunLog log(spec(run));
    log.append_train({4, 400, 3.0, 2.5, 0.5, 1e-3, 1.0, 100.0});
    const auto alive = rf::status(run.string());
    EXPECT_EQ(alive.status, RunStatus::kRunning);
    EXPECT_EQ(alive.logged_steps, 1);
    EXPECT_EQ(alive.last_logged_step, 4);
  }
  // The writer is gone and the log still says running: it died.
  const auto dead = rf::status(run.string());
  EXPECT_EQ(dead.status, RunStatus::kFailed);
  EXPECT_NE(dead.message.find("writer died"), std::string::npos) << dead.message;
  EXPECT_FALSE(dead.writer_alive);
  fs::remove(rf::log_path(run.string()));
  {
    lnfree::runlog::RunLog log(spec(run));
    log.finish(RunStatus::kDiverged, "diverged at step 3");
  }
  const auto diverged = rf::status(run.string());
  EXPECT_EQ(diverged.status, RunStatus::kDiverged);
  EXPECT_EQ(diverged.message, "diverged at step 3");
  fs::remove_all(run);
}
