// Deterministic kill points for the fault-injection suite (tests/faults/): with
// LNFREE_DEBUG_KILL_AT="<point>:<step>", the process SIGKILLs itself when it reaches that point at
// that step, e.g. "checkpoint-write:4" (model.safetensors written, the rest of the checkpoint not)
// or "log-append:7" (the first column of a run.h5 train row extended, the others not). Random kill
// moments rarely land inside these short windows; these make sure each is exercised.
// LNFREE_DEBUG_STOP_AT takes the same "<point>:<step>" and SIGSTOPs the process there instead, so
// that a test can fill the disk at a known moment and SIGCONT it. Unset, a point costs two cached
// getenv comparisons.
#pragma once

#include <cstdint>

namespace lnfree {

void debug_kill_point(const char* point, std::int64_t step);

}  // namespace lnfree
