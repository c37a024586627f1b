#include "fuzz_support.h"

#include <filesystem>
#include <fstream>
#include <system_error>

namespace lnfree::fuzz {
namespace {

namespace fs = std::filesystem;

std::string make_scratch_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/lnfree-fuzz-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    std::perror("lnfree fuzz: mkdtemp");
    std::abort();
  }
  return pattern;
}

// Removed when the process exits normally (libFuzzer calls exit() after -max_total_time or -runs);
// a crash leaves it behind. A static object's destructor, not atexit: a handler registered while
// the static is being initialised would run after the static is destroyed.
struct ScratchDir {
  std::string path = make_scratch_dir();
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

}  // namespace

const std::string& scratch_dir() {
  static const ScratchDir dir;
  return dir.path;
}

void write_bytes(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) {
    std::fprintf(stderr, "lnfree fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
}

}  // namespace lnfree::fuzz
