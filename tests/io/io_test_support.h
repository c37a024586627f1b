// Helpers shared by the io tests: a temporary folder per test, raw file writing for malformed
// safetensors files, and running tests/io/independent_safetensors.py (a reader sharing no code
// with lnfree) under /usr/bin/python3.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace lnfree::io::testing {

// A fresh folder under the system temp dir, named after the running test and the process id,
// removed when the test ends.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() / ("lnfree_" + std::string(info->test_suite_name()) + "_" +
                                                      info->name() + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Runs the independent Python reader with `args` and parses the JSON it prints. Fails the test
// (and returns null) when Python exits non-zero.
inline nlohmann::json run_independent_reader(const std::string& args) {
  const std::string command =
      std::string("/usr/bin/python3 ") + LNFREE_SOURCE_DIR + "/tests/io/independent_safetensors.py " + args;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "cannot run " << command;
    return nullptr;
  }
  std::string output;
  std::array<char, 65536> buffer;
  std::size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    ADD_FAILURE() << command << " failed with status " << status << "; stdout: " << output.substr(0, 500);
    return nullptr;
  }
  return nlohmann::json::parse(output);
}

}  // namespace lnfree::io::testing
