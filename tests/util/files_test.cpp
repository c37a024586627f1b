#include "util/files.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "util/error.h"

namespace fs = std::filesystem;

TEST(Files, AtomicWriteReplacesWholeFile) {
  auto dir = fs::temp_directory_path() / "lnfree_files_test";
  fs::create_directories(dir);
  auto path = (dir / "a.txt").string();
  lnfree::write_file_atomically(path, "first");
  lnfree::write_file_atomically(path, "second");
  EXPECT_EQ(lnfree::read_file(path), "second");
  fs::remove_all(dir);
}

TEST(Files, FailedWriteLeavesOldContentsAndNoTemporary) {
  auto dir = fs::temp_directory_path() / "lnfree_files_test2";
  fs::create_directories(dir);
  auto path = (dir / "b.txt").string();
  lnfree::write_file_atomically(path, "kept");
  EXPECT_THROW(lnfree::write_atomically(path, [](const std::string&) { lnfree::fail("boom"); }),
               lnfree::Error);
  EXPECT_EQ(lnfree::read_file(path), "kept");
  int entries = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(dir)) ++entries;
  EXPECT_EQ(entries, 1);
  fs::remove_all(dir);
}

TEST(Files, MappedFileSeesBytes) {
  auto path = (fs::temp_directory_path() / "lnfree_map_test.bin").string();
  lnfree::write_file_atomically(path, std::string("\x01\x02\x03", 3));
  lnfree::MappedFile map(path);
  ASSERT_EQ(map.size(), 3u);
  EXPECT_EQ(map.data()[2], 3);
  fs::remove(path);
  EXPECT_THROW(lnfree::MappedFile("/nonexistent/file"), lnfree::Error);
}
