#include "parallel/run_guard.h"
#include "util/build_info.h"

#include <spdlog/spdlog.h>

#include <cstddef>
#include <exception>

namespace lnfree::parallel {

int run_or_abort(Communicator& comm, const std::function<int()>& body) {
  if (comm.world_size() == 1) return body();
  int code = 0;
  try {
    code = body();
  } catch (const CollectiveError&) {
    comm.finalize();
    throw;
  } catch (const std::exception& e) {
    comm.abort(1, e.what());
  } catch (...) {
    comm.abort(1, "unknown exception");
  }
  comm.finalize();
  return code;
}

void check_ranks_agree(Communicator& comm, const std::string& config_hash) {
  if (comm.world_size() == 1) return;
  struct Item {
    const char* what;
    std::string value;
    const char* remedy;
  };
  const Item items[] = {
      {"config hash", config_hash, "every rank must read the same config file with the same --set overrides"},
      {"lnfree version", build_version(), "run the same build on every node"},
      {"git commit", build_git_commit(), "rebuild every node from the same commit"},
  };
  std::string problem;
  for (const auto& item : items) {
    const auto values = comm.host_allgather(item.value);
    if (problem.empty() && values[static_cast<std::size_t>(comm.rank())] != values[0])
      problem =
          fmt::format("{} {} differs from rank 0's {} ({})", item.what, item.value, values[0], item.remedy);
  }
  agree_or_fail(comm, problem);
}

}  // namespace lnfree::parallel
