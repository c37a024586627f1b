#include "parallel/launch.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "util/error.h"

namespace lp = lnfree::parallel;

namespace {

lp::EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string error_of(std::map<std::string, std::string> vars) {
  try {
    lp::detect_launch(env_of(std::move(vars)));
  } catch (const lnfree::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Launch, NoLauncherIsOneRank) {
  auto info = lp::detect_launch(env_of({{"HOME", "/root"}}));
  EXPECT_EQ(info.launcher, "none");
  EXPECT_EQ(info.rank, 0);
  EXPECT_EQ(info.world_size, 1);
  EXPECT_EQ(info.local_rank, 0);
}

TEST(Launch, OpenMpiVariables) {
  auto info = lp::detect_launch(env_of(
      {{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "8"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}}));
  EXPECT_EQ(info.launcher, "mpirun");
  EXPECT_EQ(info.rank, 5);
  EXPECT_EQ(info.world_size, 8);
  EXPECT_EQ(info.local_rank, 1);
}

TEST(Launch, SrunJobStepVariables) {
  auto info = lp::detect_launch(env_of({{"SLURM_PROCID", "3"},
                                        {"SLURM_STEP_ID", "0"},
                                        {"SLURM_NTASKS", "16"},
                                        {"SLURM_STEP_NUM_TASKS", "4"},
                                        {"SLURM_LOCALID", "3"}}));
  EXPECT_EQ(info.launcher, "srun");
  EXPECT_EQ(info.rank, 3);
  EXPECT_EQ(info.world_size, 4);  // the step's tasks, not the allocation's
  EXPECT_EQ(info.local_rank, 3);
}

TEST(Launch, BatchScriptOfAManyTaskJobIsOneProcess) {
  // sbatch --ntasks=8 sets SLURM_NTASKS and SLURM_PROCID for the script itself, but no job step.
  auto info =
      lp::detect_launch(env_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "0"}}));
  EXPECT_EQ(info.launcher, "none");
  EXPECT_EQ(info.world_size, 1);
}

TEST(Launch, MpirunInsideAnAllocationWins) {
  auto info = lp::detect_launch(env_of({{"SLURM_PROCID", "0"},
                                        {"SLURM_STEP_ID", "0"},
                                        {"SLURM_NTASKS", "1"},
                                        {"SLURM_LOCALID", "0"},
                                        {"OMPI_COMM_WORLD_RANK", "1"},
                                        {"OMPI_COMM_WORLD_SIZE", "2"},
                                        {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}}));
  EXPECT_EQ(info.launcher, "mpirun");
  EXPECT_EQ(info.world_size, 2);
}

TEST(Launch, BadValuesNameTheVariable) {
  std::string e = error_of(
      {{"OMPI_COMM_WORLD_RANK", "x"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "0"}});
  std::printf("%s\n", e.c_str());
  EXPECT_NE(e.find("OMPI_COMM_WORLD_RANK"), std::string::npos);
  EXPECT_NE(e.find("'x'"), std::string::npos);
  e = error_of(
      {{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "0"}});
  std::printf("%s\n", e.c_str());
  EXPECT_NE(e.find("below the world size"), std::string::npos);
  e = error_of({{"SLURM_PROCID", "0"}, {"SLURM_STEP_ID", "0"}, {"SLURM_NTASKS", "2"}});
  std::printf("%s\n", e.c_str());
  EXPECT_NE(e.find("SLURM_LOCALID"), std::string::npos);
}
