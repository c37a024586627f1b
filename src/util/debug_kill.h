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

// The rank failures of the data-parallel failure tests (docs/distributed.md):
// LNFREE_DEBUG_DIE_AT_STEP=N makes rank LNFREE_DEBUG_DIE_RANK (default 1) fail when step N starts,
// by SIGKILL (LNFREE_DEBUG_DIE_MODE=kill, the default) or by throwing lnfree::Error (=throw).
struct DebugFault {
  std::int64_t step = -1;  // -1: none for this rank
  bool kill = true;
};
DebugFault debug_fault(int rank);
// Fails as `fault` says; called when step `step` (== fault.step) starts.
[[noreturn]] void inject(const DebugFault& fault, int rank, std::int64_t step);

}  // namespace lnfree
