#include "parallel/launch.h"

#include <cstdlib>
#include <exception>

#include "util/error.h"

namespace lnfree::parallel {
namespace {

int int_variable(const EnvLookup& env, const std::string& name, const std::string& launcher) {
  const auto value = env(name);
  if (!value) fail("launched by {}, but the environment variable {} is missing", launcher, name);
  try {
    std::size_t used = 0;
    const long v = std::stol(*value, &used);
    if (used == value->size() && v >= 0 && v < (1L << 30)) return static_cast<int>(v);
  } catch (const std::exception&) {
  }
  fail("environment variable {}: expected a non-negative integer, got '{}'", name, *value);
}

}  // namespace

LaunchInfo detect_launch(const EnvLookup& env) {
  LaunchInfo info;
  std::string rank_name, size_name;
  if (env("OMPI_COMM_WORLD_SIZE")) {
    info.launcher = "mpirun";
    rank_name = "OMPI_COMM_WORLD_RANK", size_name = "OMPI_COMM_WORLD_SIZE";
    info.local_rank = int_variable(env, "OMPI_COMM_WORLD_LOCAL_RANK", info.launcher);
  } else if (env("SLURM_PROCID") && (env("SLURM_STEP_ID") || env("SLURM_STEPID"))) {
    info.launcher = "srun";
    rank_name = "SLURM_PROCID",
    size_name = env("SLURM_STEP_NUM_TASKS") ? "SLURM_STEP_NUM_TASKS" : "SLURM_NTASKS";
    info.local_rank = int_variable(env, "SLURM_LOCALID", info.launcher);
  } else {
    return info;
  }
  info.rank = int_variable(env, rank_name, info.launcher);
  info.world_size = int_variable(env, size_name, info.launcher);
  if (info.world_size < 1) fail("environment variable {}: expected at least 1 rank, got 0", size_name);
  if (info.rank >= info.world_size)
    fail("environment variables {} = {} and {} = {}: the rank must be below the world size", rank_name,
         info.rank, size_name, info.world_size);
  return info;
}

LaunchInfo detect_launch() {
  return detect_launch([](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  });
}

}  // namespace lnfree::parallel
