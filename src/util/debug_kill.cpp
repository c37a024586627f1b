#include "util/debug_kill.h"

#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>
#include <string>

#include "util/error.h"

namespace lnfree {

void debug_kill_point(const char* point, std::int64_t step) {
  static const char* const kill_at = std::getenv("LNFREE_DEBUG_KILL_AT");
  static const char* const stop_at = std::getenv("LNFREE_DEBUG_STOP_AT");
  if (kill_at == nullptr && stop_at == nullptr) return;
  const std::string here = std::string(point) + ":" + std::to_string(step);
  if (kill_at != nullptr && here == kill_at) std::raise(SIGKILL);
  // Stopped, the process waits for the test to change its world (fill the disk), then SIGCONT.
  if (stop_at != nullptr && here == stop_at) std::raise(SIGSTOP);
}

DebugFault debug_fault(int rank) {
  DebugFault fault;
  const char* at = std::getenv("LNFREE_DEBUG_DIE_AT_STEP");
  if (at == nullptr) return fault;
  const char* who = std::getenv("LNFREE_DEBUG_DIE_RANK");
  if ((who != nullptr ? std::atoi(who) : 1) != rank) return fault;
  fault.step = std::atoll(at);
  const char* mode = std::getenv("LNFREE_DEBUG_DIE_MODE");
  fault.kill = mode == nullptr || std::string(mode) != "throw";
  return fault;
}

void inject(const DebugFault& fault, int rank, std::int64_t step) {
  spdlog::warn("rank {}: LNFREE_DEBUG_DIE_AT_STEP={}: {} now", rank, step,
               fault.kill ? "SIGKILL" : "throwing");
  if (fault.kill) {
    spdlog::default_logger()->flush();
    std::raise(SIGKILL);
  }
  fail("rank {}: failing at step {} as LNFREE_DEBUG_DIE_AT_STEP asks", rank, step);
}

}  // namespace lnfree
