#include "util/malloc_tuning.h"

#include <cstdlib>  // defines __GLIBC__ on glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace lnfree {

bool keep_large_allocations_in_the_heap() {
#if defined(__GLIBC__)
  // 1 GiB: larger single buffers are rare enough to keep their mmap; trimming off altogether.
  const bool threshold = mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1;
  const bool trim = mallopt(M_TRIM_THRESHOLD, -1) == 1;
  return threshold && trim;
#else
  return false;
#endif
}

}  // namespace lnfree
