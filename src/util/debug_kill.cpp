#include "util/debug_kill.h"

#include <csignal>
#include <cstdlib>
#include <string>

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

}  // namespace lnfree
