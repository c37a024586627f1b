// File helpers shared by every writer and reader: atomic writes (temp file + rename, so a crash
// never leaves a half-written file under the final name) and read-only memory maps.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace lnfree {

// Calls `write` with the path of a temporary file in the same directory, fsyncs it, then renames
// it onto `path`. On any exception the temporary is removed and `path` is left untouched.
void write_atomically(const std::string& path, const std::function<void(const std::string& tmp_path)>& write);

// Writes `contents` to `path` atomically.
void write_file_atomically(const std::string& path, std::string_view contents);

// Reads a whole file; throws lnfree::Error naming the file when it cannot.
std::string read_file(const std::string& path);

// A read-only, private memory map of a whole file. Movable, not copyable.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void release();
  std::string path_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace lnfree
