#include "util/run_lock.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "util/error.h"

namespace fs = std::filesystem;

TEST(RunLock, ASecondWriterFailsNamingTheHolderAndTheLockEndsWithItsOwner) {
  const fs::path dir = fs::temp_directory_path() / ("lnfree-run-lock-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  {
    lnfree::RunLock first(dir.string());
    std::string message;
    try {
      lnfree::RunLock second(dir.string());  // another open file description: flock conflicts
    } catch (const lnfree::Error& e) {
      message = e.what();
    }
    std::printf("second writer: %s\n", message.c_str());
    EXPECT_NE(message.find(dir.string()), std::string::npos);
    EXPECT_NE(message.find("PID " + std::to_string(::getpid())), std::string::npos);
  }
  EXPECT_NO_THROW(lnfree::RunLock again(dir.string()));  // released with its owner
  fs::remove_all(dir);
}
