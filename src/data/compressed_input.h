// Line-by-line reading of a file that may be compressed with zstd, gzip or xz (The Pile ships
// *.jsonl.zst, OpenWebText dumps are xz), streamed: the file is read and decompressed in 1 MiB
// chunks, so memory stays at a few MiB plus the longest line, whatever the file size.
//
// The codec is picked from the file's first bytes (zstd 28 b5 2f fd, gzip 1f 8b, xz fd 37 7a 58 5a
// 00); no magic means plain bytes. None of the magics is valid UTF-8 (0xb5 and 0x8b cannot follow
// an ASCII byte, 0xfd never occurs), so a text file never looks compressed. The file name only
// has to agree: a name ending in .zst, .gz or .xz whose bytes are not that codec is an error (a
// mislabelled file or, typically, an HTML error page saved by a failed download).
//
// Concatenated frames/members/streams (pzstd, pigz, `cat a.gz b.gz`) are read as one stream.
// Corrupt or truncated data is an lnfree::Error "FILE:LINE: corrupt CODEC data, detected at
// uncompressed byte N: WHY", never a crash or a silently shortened corpus. N and LINE are where the
// decoder noticed (to within one 128 KiB block for zstd): for a checksum mismatch that is the end
// of the damaged frame, for a truncated file the end of what it holds.
//
// Document ids do not see the compression: without_compression_suffix("data.jsonl.zst") is
// "data.jsonl", and corpus readers derive ids from that name (corpus_readers.h).
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

namespace lnfree::data {

enum class Compression { kNone, kZstd, kGzip, kXz };

// "plain", "zstd", "gzip", "xz".
const char* compression_name(Compression compression);

// The codec a file name's suffix names: ".zst", ".gz", ".xz", else kNone.
Compression compression_of_name(std::string_view file_name);

// The name without its compression suffix ("a/b.jsonl.gz" -> "a/b.jsonl"); other names unchanged.
std::string_view without_compression_suffix(std::string_view file_name);

// A file's lines, decompressed on the fly. Throws lnfree::Error naming the file when it cannot be
// opened or read, when its name and magic bytes disagree, and when the compressed data is corrupt
// or ends early.
class LineReader {
 public:
  explicit LineReader(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line without its '\n' (a last line without one counts too); false at the end. The
  // view stays valid until the next call.
  bool next(std::string_view& line);

  const std::string& path() const { return path_; }
  Compression compression() const { return compression_; }
  std::uint64_t line_number() const { return line_number_; }          // of the line last returned, 1-based
  std::uint64_t file_bytes_read() const { return file_bytes_read_; }  // as stored: compressed bytes
  std::uint64_t file_size() const { return file_size_; }

  struct Codec;  // one per compression, in compressed_input.cpp

 private:
  void refill_input();
  std::size_t decode(char* out, std::size_t capacity);

  struct CloseFile {
    void operator()(std::FILE* file) const { std::fclose(file); }
  };

  std::string path_;
  std::unique_ptr<std::FILE, CloseFile> file_;  // closed also when the constructor throws
  Compression compression_ = Compression::kNone;
  std::unique_ptr<Codec> codec_;
  std::uint64_t file_size_ = 0;
  std::uint64_t file_bytes_read_ = 0;
  bool file_ended_ = false;

  std::string input_;  // compressed bytes read from the file, [input_pos_, input_end_) not yet decoded
  std::size_t input_pos_ = 0;
  std::size_t input_end_ = 0;

  std::string lines_;  // decoded bytes, [lines_begin_, lines_end_) not yet returned as lines
  std::size_t lines_begin_ = 0;
  std::size_t lines_end_ = 0;
  std::uint64_t decoded_bytes_ = 0;  // uncompressed bytes produced so far
  bool decoded_all_ = false;
  std::uint64_t line_number_ = 0;
};

}  // namespace lnfree::data
