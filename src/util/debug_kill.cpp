#include "util/debug_kill.h"

#include <csignal>
#include <cstdlib>
#include <string>

namespace lnfree {

void debug_kill_point(const char* point, std::int64_t step) {
  static const char* const target = std::getenv("LNFREE_DEBUG_KILL_AT");
  if (target == nullptr) return;
  if (std::string(target) == std::string(point) + ":" + std::to_string(step)) std::raise(SIGKILL);
}

}  // namespace lnfree
