// Runs a program and captures its standard output (benchmarks that time a reference tool or a
// launcher). Standard error passes through to ours.
#pragma once

#include <string>
#include <vector>

namespace lnfree {

struct ProcessResult {
  int exit_code = -1;  // -1 when the process did not exit normally (a signal)
  std::string output;  // everything it wrote to stdout
};

// argv[0] is looked up on PATH. The environment is ours with `env` ("NAME=VALUE") replacing or
// adding those names. Throws lnfree::Error, prefixed with `what`, when the program cannot start.
ProcessResult run_capturing_output(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                                   const std::string& what);

}  // namespace lnfree
