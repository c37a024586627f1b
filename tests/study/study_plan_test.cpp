// The study file's --set overrides, the replicate seeds of a plan and the ETA model.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "config/train_config.h"
#include "study/study_config.h"
#include "study/study_eta.h"
#include "study/study_plan.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace lnfree::study;

namespace {

// A study file over the repository's tiny configs (no data is read to make a plan without a remap).
fs::path write_study(const std::string& extra_study = "") {
  const fs::path dir = fs::temp_directory_path() / ("lnfree-study-plan-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path src(LNFREE_SOURCE_DIR);
  std::ofstream(dir / "s.toml") << "[study]\nname = \"t\"\n"
                                << extra_study << "\n"
                                << "[data]\ntrain = \"" << (src / "data/tokens/brown/manifest.json").string()
                                << "\"\neval_sets = [\"" << (src / "data/tokens/brown/manifest.json").string()
                                << ":val\"]\n"
                                << "[runs]\npretrain = \""
                                << (src / "configs/study/tiny-pretrain.toml").string() << "\"\ncontrol = \""
                                << (src / "configs/study/tiny-control.toml").string() << "\"\nremove_ln = \""
                                << (src / "configs/study/tiny-remove-ln.toml").string()
                                << "\"\n[[model]]\nname = \"a\"\ninit = \""
                                << (src / "configs/models/study-2x64.toml").string()
                                << "\"\n[[speed]]\nlabel = \"g0\"\ngap = 0\n";
  return dir / "s.toml";
}

std::string value_after(const std::vector<std::string>& args, const std::string& prefix) {
  for (const auto& a : args)
    if (a.rfind(prefix, 0) == 0) return a.substr(prefix.size());
  return "";
}

}  // namespace

TEST(StudyConfig, SetOverridesStudyFields) {
  const auto path = write_study("seeds = 2");
  EXPECT_EQ(load_study_config(path.string()).seeds, 2);
  EXPECT_EQ(load_study_config(path.string()).seed, 0);
  const auto c = load_study_config(path.string(), {"study.seed=7", "study.seeds=4", "study.delta=0.05"});
  EXPECT_EQ(c.seed, 7);
  EXPECT_EQ(c.seeds, 4);
  EXPECT_DOUBLE_EQ(c.delta, 0.05);
}

TEST(StudyConfig, BadOverridesNameTheAssignment) {
  const auto path = write_study();
  auto message = [&](const std::string& assignment) {
    try {
      load_study_config(path.string(), {assignment});
    } catch (const lnfree::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("study.seeds=0").find("'seeds': expected >= 1"), std::string::npos)
      << message("study.seeds=0");
  EXPECT_NE(message("study.seed=x").find("'seed': expected an integer"), std::string::npos);
  EXPECT_NE(message("study.sede=1").find("unknown key 'sede'"), std::string::npos);
  EXPECT_NE(message("model.name=b").find("--set 'model.name=b'"), std::string::npos);
  EXPECT_NE(message("seed").find("expected section.key=value"), std::string::npos);
}

TEST(StudyPlan, EveryReplicateHasItsOwnSeedsFoldersAndPretraining) {
  const auto path = write_study("seeds = 3");
  const auto c = load_study_config(path.string());
  const auto plan = make_plan(c, "/tmp/out");
  ASSERT_EQ(plan.seeds, (std::vector<std::int64_t>{0, 1, 2}));
  ASSERT_EQ(plan.sizes.size(), 1u);
  ASSERT_EQ(plan.sizes[0].replicates.size(), 3u);
  std::set<std::string> pretrain_dirs, run_seeds, pretrain_seeds;
  std::map<std::string, const Job*> by_id;
  for (const auto& job : plan.jobs) by_id[job.id] = &job;
  for (std::int64_t v : plan.seeds) {
    const std::string id = "a/seed-" + std::to_string(v);
    for (const char* what : {"/pretrain", "/stats", "/original", "/zero-shot", "/control", "/speed-g0"})
      ASSERT_TRUE(by_id.count(id + what)) << id + what;
    const auto& pretrain = *by_id[id + "/pretrain"];
    pretrain_dirs.insert(pretrain.run_dir);
    pretrain_seeds.insert(value_after(pretrain.args, "run.seed="));
    EXPECT_EQ(value_after(pretrain.args, "run.seed="), std::to_string(pretrain_run_seed(v)));
    // The control and the removal runs of a replicate share one fine-tuning seed and one base.
    const auto& control = *by_id[id + "/control"];
    const auto& removal = *by_id[id + "/speed-g0"];
    EXPECT_EQ(value_after(control.args, "run.seed="), value_after(removal.args, "run.seed="));
    EXPECT_EQ(value_after(control.args, "run.init="), value_after(removal.args, "run.init="));
    EXPECT_EQ(value_after(control.args, "run.init="), (fs::path(pretrain.run_dir) / "final").string());
    run_seeds.insert(value_after(control.args, "run.seed="));
    EXPECT_EQ(control.run_dir, "/tmp/out/runs/a/seed-" + std::to_string(v) + "/control");
    EXPECT_EQ(plan.sizes[0].replicates[static_cast<std::size_t>(v)].original_eval,
              "/tmp/out/models/a/seed-" + std::to_string(v) + "/original.json");
  }
  EXPECT_EQ(pretrain_dirs.size(), 3u);  // each replicate pretrains its own model
  EXPECT_EQ(pretrain_seeds.size(), 3u);
  EXPECT_EQ(run_seeds.size(), 3u);
}

TEST(StudyPlan, TheBaseSeedChangesEverySeedOfTheStudy) {
  const auto path = write_study("seeds = 2");
  const auto a = make_plan(load_study_config(path.string()), "/tmp/out");
  const auto b = make_plan(load_study_config(path.string(), {"study.seed=10"}), "/tmp/out");
  EXPECT_EQ(b.seeds, (std::vector<std::int64_t>{10, 11}));
  std::set<std::string> seeds_a, seeds_b;
  for (const auto& job : a.jobs)
    if (!value_after(job.args, "run.seed=").empty()) seeds_a.insert(value_after(job.args, "run.seed="));
  for (const auto& job : b.jobs)
    if (!value_after(job.args, "run.seed=").empty()) seeds_b.insert(value_after(job.args, "run.seed="));
  EXPECT_EQ(seeds_a.size(), 4u);  // 2 pretraining + 2 fine-tuning seeds
  for (const auto& s : seeds_b) EXPECT_FALSE(seeds_a.count(s)) << "seed " << s << " in both studies";
}

TEST(StudyPlan, IntervalEvaluationsUseTheFirstSetAndTheFullPassComesLast) {
  const auto path = write_study();
  auto final_sets_of = [](const StudyPlan& plan) {
    for (const auto& job : plan.jobs)
      if (job.id == "a/seed-0/control") {
        EXPECT_NE(value_after(job.args, "eval.sets=").find(":val\"]"), std::string::npos);
        return value_after(job.args, "eval.final_sets=");
      }
    return std::string("no control job");
  };
  // Default: every eval set gets its full pass; [data] final_eval_sets = [] turns them off.
  EXPECT_NE(final_sets_of(make_plan(load_study_config(path.string()), "/tmp/out")).find(":val\"]"),
            std::string::npos);
  EXPECT_EQ(
      final_sets_of(make_plan(load_study_config(path.string(), {"data.final_eval_sets=[]"}), "/tmp/out")),
      "[]");
}

// An eval set whose path holds a quote and a backslash reaches the runs as the same string: the
// plan's --set value is an escaped TOML array (it was built unescaped, and did not parse).
TEST(StudyPlan, EvalSetOverridesEscapeQuotesAndBackslashes) {
  const fs::path src(LNFREE_SOURCE_DIR);
  const std::string odd = "/tmp/we\"ird\\dir/manifest.json:val";
  const fs::path path =
      fs::temp_directory_path() / ("lnfree-study-odd-" + std::to_string(::getpid()) + ".toml");
  std::ofstream(path) << "[study]\nname = \"t\"\n[data]\ntrain = \""
                      << (src / "data/tokens/brown/manifest.json").string() << "\"\neval_sets = ['" << odd
                      << "']\n[runs]\npretrain = \"" << (src / "configs/study/tiny-pretrain.toml").string()
                      << "\"\ncontrol = \"" << (src / "configs/study/tiny-control.toml").string()
                      << "\"\nremove_ln = \"" << (src / "configs/study/tiny-remove-ln.toml").string()
                      << "\"\n[[model]]\nname = \"a\"\ninit = \""
                      << (src / "configs/models/study-2x64.toml").string()
                      << "\"\n[[speed]]\nlabel = \"g0\"\ngap = 0\n";
  const auto plan = make_plan(load_study_config(path.string()), "/tmp/out");
  int checked = 0;
  for (const auto& job : plan.jobs)
    for (const auto& arg : job.args)
      for (const std::string field : {"eval.sets", "eval.final_sets"})
        if (arg.rfind(field + "=", 0) == 0) {
          lnfree::config::TrainConfig config;
          lnfree::config::apply_override(config, arg);
          const auto& sets = field == "eval.sets" ? config.eval.sets : config.eval.final_sets;
          ASSERT_EQ(sets.size(), 1u) << arg;
          EXPECT_EQ(sets[0], odd) << arg;
          ++checked;
        }
  EXPECT_GT(checked, 0);
  fs::remove(path);
}

namespace {
Job job(const std::string& id, double cost, std::vector<std::string> deps = {}) {
  Job j;
  j.id = id;
  j.cost = cost;
  j.deps = std::move(deps);
  return j;
}
}  // namespace

TEST(StudyEta, SchedulesTheRemainingJobsOnTheSlotsWithPerModelRates) {
  // Model "a" runs 1e9 FLOPs/s, model "b" 0.5e9; each job starts up in 1 s.
  StudyPlan plan;
  plan.jobs = {job("a/short", 0),         job("a/x", 10e9),          job("b/x", 10e9),
               job("a/y", 10e9, {"a/x"}), job("b/y", 10e9, {"b/x"}), job("b/z", 10e9, {"b/y"})};
  EtaModel eta;
  std::map<std::string, double> priority;
  EXPECT_FALSE(eta.remaining(plan, {}, {}, priority, 2).has_value());  // nothing measured yet
  eta.observe(plan.jobs[0], 1.0);
  eta.observe(plan.jobs[1], 11.0);
  eta.observe(plan.jobs[2], 21.0);
  EXPECT_NEAR(*eta.predict(plan.jobs[3]), 11.0, 1e-9);
  EXPECT_NEAR(*eta.predict(plan.jobs[4]), 21.0, 1e-9);
  // Done: short, a/x, b/x. Left: a/y (11 s) and the chain b/y -> b/z (21 + 21 s) on 2 slots: the
  // chain decides, 42 s, not the 53 s / 2 a single rate over the remaining FLOPs would give.
  const std::set<std::string> done = {"a/short", "a/x", "b/x"};
  EXPECT_NEAR(*eta.remaining(plan, done, {}, priority, 2), 42.0, 1e-9);
  // With b/y running for 5 s already: 16 + 21.
  EXPECT_NEAR(*eta.remaining(plan, done, {{"b/y", 5.0}}, priority, 2), 37.0, 1e-9);
  // One slot: everything in sequence.
  EXPECT_NEAR(*eta.remaining(plan, done, {}, priority, 1), 53.0, 1e-9);
}
