// Shared pieces of the libFuzzer targets (docs/robustness.md). A target calls its code under test
// inside run_expecting_errors: lnfree::Error is the intended answer to bad input and is swallowed;
// any other exception escapes, terminates the process and libFuzzer reports it with the input, as
// it does crashes, sanitizer reports, hangs (-timeout) and memory blow-ups (-rss_limit_mb).
// Properties a valid input must satisfy are checked with fuzz_check, which aborts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "util/error.h"

namespace lnfree::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

[[noreturn]] inline void fuzz_failure(const char* file, int line, const char* what,
                                      const std::string& detail) {
  std::fprintf(stderr, "%s:%d: fuzz property failed: %s\n%s\n", file, line, what, detail.c_str());
  std::abort();
}

#define FUZZ_CHECK(cond, detail) \
  ((cond) ? (void)0 : ::lnfree::fuzz::fuzz_failure(__FILE__, __LINE__, #cond, (detail)))

template <class Body>
void run_expecting_errors(Body&& body) {
  try {
    body();
  } catch (const lnfree::Error&) {
    // The clear-error path: a message naming the file and field, which is what bad input deserves.
  }
}

// A private folder for the files a target writes (the readers under test take paths), created on
// first use under $TMPDIR and removed at exit. One per process: libFuzzer runs inputs one at a time.
const std::string& scratch_dir();

// Writes `bytes` to `path` (truncating); aborts on I/O failure, which is not the code under test.
void write_bytes(const std::string& path, std::string_view bytes);

}  // namespace lnfree::fuzz
