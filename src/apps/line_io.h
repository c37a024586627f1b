// Fast line-oriented stdin/stdout for the filter commands (tokenize, detokenize): stdin is read in
// large blocks and split on '\n'; stdout is written in large blocks, never flushed per line.
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "util/error.h"

namespace lnfree::apps {

// Yields the lines of stdin without their '\n'. A last line without '\n' is still a line; an empty
// input has no lines. Bytes are passed through unchanged ('\r' included).
class StdinLines {
 public:
  bool next(std::string_view& line) {
    while (true) {
      const auto newline = buffer_.find('\n', begin_);
      if (newline != std::string::npos) {
        line = std::string_view(buffer_).substr(begin_, newline - begin_);
        begin_ = newline + 1;
        return true;
      }
      if (eof_) {
        if (begin_ >= buffer_.size()) return false;
        line = std::string_view(buffer_).substr(begin_);
        begin_ = buffer_.size();
        return true;
      }
      refill();
    }
  }

 private:
  void refill() {
    buffer_.erase(0, begin_);  // keep the unfinished line
    begin_ = 0;
    const std::size_t old_size = buffer_.size();
    buffer_.resize(old_size + kBlock);
    const std::size_t got = std::fread(buffer_.data() + old_size, 1, kBlock, stdin);
    buffer_.resize(old_size + got);
    if (got < kBlock) {
      if (std::ferror(stdin)) fail("stdin: read failed: {}", std::strerror(errno));
      eof_ = true;
    }
  }

  static constexpr std::size_t kBlock = 1 << 20;
  std::string buffer_;
  std::size_t begin_ = 0;
  bool eof_ = false;
};

// Collects output and writes it to stdout in blocks of about 1 MiB; finish() writes the rest.
class BufferedStdout {
 public:
  std::string& buffer() { return buffer_; }
  void maybe_flush() {
    if (buffer_.size() >= kBlock) write_out();
  }
  void finish() {
    write_out();
    if (std::fflush(stdout) != 0) fail("stdout: write failed: {}", std::strerror(errno));
  }

 private:
  void write_out() {
    if (!buffer_.empty() && std::fwrite(buffer_.data(), 1, buffer_.size(), stdout) != buffer_.size()) {
      fail("stdout: write failed: {}", std::strerror(errno));
    }
    buffer_.clear();
  }

  static constexpr std::size_t kBlock = 1 << 20;
  std::string buffer_;
};

}  // namespace lnfree::apps
