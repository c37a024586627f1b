// One writer per run folder: an exclusive flock on RUN/.lock, held for the life of the object and
// released by the kernel when the process dies (no stale locks after a crash or SIGKILL). The file
// holds the holder's PID, so that a second writer can say who holds the folder.
#pragma once

#include <string>

namespace lnfree {

class RunLock {
 public:
  // Creates `dir` if needed and takes the lock, or throws lnfree::Error naming the folder and the
  // PID of the process that holds it. Nothing else in the folder is touched.
  explicit RunLock(const std::string& dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  static constexpr const char* kFileName = ".lock";

  // True when a process holds the lock of `dir` now (a probe: takes and drops a shared lock; a
  // writer starting in that instant can see the folder as held and must simply try again).
  static bool is_held(const std::string& dir);

 private:
  int fd_ = -1;
};

}  // namespace lnfree
