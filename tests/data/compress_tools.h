// Compresses test files with the real command-line tools (zstd, gzip, xz; launch/setup.sh installs
// them), so the decoders are checked against what the corpora are actually shipped as, not against
// a compressor of our own.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace lnfree::testing {

// The tool's name for a suffix: ".zst" -> "zstd", ".gz" -> "gzip", ".xz" -> "xz".
inline std::string compressor_for(const std::string& suffix) {
  if (suffix == ".zst") return "zstd";
  if (suffix == ".gz") return "gzip";
  return "xz";
}

// Writes `in` compressed to `out` with the tool that `suffix` names; fails the test when the tool is
// missing (a skipped test would hide a broken setup).
inline void compress_file(const std::string& in, const std::string& out, const std::string& suffix) {
  const std::string tool = compressor_for(suffix);
  ASSERT_EQ(std::system(("command -v " + tool + " >/dev/null").c_str()), 0)
      << tool << " not found: install it (launch/setup.sh does)";
  const std::string command = tool + " -c -q '" + in + "' > '" + out + "'";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
}

}  // namespace lnfree::testing
