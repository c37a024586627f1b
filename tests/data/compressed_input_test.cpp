// LineReader against files written by the real zstd, gzip and xz tools: the same lines as the plain
// file (across chunk boundaries, concatenated members), and an lnfree::Error naming the file and
// the position for truncated, corrupt or mislabelled data.
#include "data/compressed_input.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "data/compress_tools.h"
#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;
using lnfree::data::Compression;
using lnfree::data::LineReader;
using lnfree::testing::compress_file;

namespace {

const std::vector<std::string> kSuffixes = {".zst", ".gz", ".xz"};

Compression compression_of_suffix(const std::string& suffix) {
  return lnfree::data::compression_of_name("x" + suffix);
}

class CompressedInput : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ =
        fs::temp_directory_path() /
        ("lnfree_compressed_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string write(const std::string& name, const std::string& contents) const {
    const std::string path = (root_ / name).string();
    lnfree::write_file_atomically(path, contents);
    return path;
  }

  static std::vector<std::string> lines_of(const std::string& path) {
    LineReader reader(path);
    std::vector<std::string> lines;
    std::string_view line;
    while (reader.next(line)) lines.emplace_back(line);
    EXPECT_EQ(reader.file_bytes_read(), reader.file_size()) << path;
    return lines;
  }

  static std::string error_reading(const std::string& path) {
    try {
      LineReader reader(path);
      std::string_view line;
      while (reader.next(line)) {
      }
    } catch (const lnfree::Error& e) {
      return e.what();
    }
    return "(no error)";
  }

  fs::path root_;
};

// Text that compresses poorly (so the compressed file spans several 1 MiB input chunks), with a
// 3 MiB line (several decode chunks), blank lines and a last line without '\n'.
std::string awkward_text() {
  std::string text = "first\n\n  \r\n";
  std::uint64_t state = 12345;
  std::string long_line;
  for (int i = 0; i < (3 << 20); ++i) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    long_line += "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"[state >> 58];
  }
  text += long_line + "\n";
  for (int i = 0; i < 1000; ++i) text += "{\"text\": \"line " + std::to_string(i) + "\"}\n";
  return text + "no newline at the end";
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return lines;
}

}  // namespace

TEST(CompressionNames, SuffixIsDroppedOnlyForCompressionSuffixes) {
  using lnfree::data::without_compression_suffix;
  EXPECT_EQ(without_compression_suffix("data.jsonl.zst"), "data.jsonl");
  EXPECT_EQ(without_compression_suffix("a/b/data.jsonl.gz"), "a/b/data.jsonl");
  EXPECT_EQ(without_compression_suffix("data.jsonl.xz"), "data.jsonl");
  EXPECT_EQ(without_compression_suffix("data.jsonl"), "data.jsonl");
  EXPECT_EQ(without_compression_suffix("data.zip"), "data.zip");
  EXPECT_EQ(lnfree::data::compression_of_name("x.jsonl.zst"), Compression::kZstd);
  EXPECT_EQ(lnfree::data::compression_of_name("x.gz"), Compression::kGzip);
  EXPECT_EQ(lnfree::data::compression_of_name("x.xz"), Compression::kXz);
  EXPECT_EQ(lnfree::data::compression_of_name("x.jsonl"), Compression::kNone);
}

TEST_F(CompressedInput, EachCodecGivesThePlainFilesLines) {
  const std::string text = awkward_text();
  const std::string plain = write("data.jsonl", text);
  const auto expected = split_lines(text);
  ASSERT_EQ(lines_of(plain), expected);
  for (const auto& suffix : kSuffixes) {
    const std::string packed = plain + suffix;
    ASSERT_NO_FATAL_FAILURE(compress_file(plain, packed, suffix));
    EXPECT_GT(fs::file_size(packed), 1u << 20) << suffix << ": should span several input chunks";
    EXPECT_EQ(LineReader(packed).compression(), compression_of_suffix(suffix));
    const auto lines = lines_of(packed);
    EXPECT_EQ(lines.size(), expected.size()) << suffix;
    EXPECT_TRUE(lines == expected) << suffix << ": lines differ from the plain file's";
  }
}

TEST_F(CompressedInput, ConcatenatedMembersAreOneStream) {
  const std::string a = write("a.jsonl", "a1\na2\n"), b = write("b.jsonl", "b1\nb2");
  for (const auto& suffix : kSuffixes) {
    ASSERT_NO_FATAL_FAILURE(compress_file(a, a + suffix, suffix));
    ASSERT_NO_FATAL_FAILURE(compress_file(b, b + suffix, suffix));
    const std::string both =
        write("both.jsonl" + suffix, lnfree::read_file(a + suffix) + lnfree::read_file(b + suffix));
    EXPECT_EQ(lines_of(both), (std::vector<std::string>{"a1", "a2", "b1", "b2"})) << suffix;
  }
}

TEST_F(CompressedInput, TruncatedDataNamesFileLineAndByte) {
  // 20,000 lines of exactly 100 bytes: the line holding uncompressed byte N is N / 100 + 1.
  std::string text;
  for (int i = 0; i < 20000; ++i) {
    std::string line = "{\"text\": \"" + std::to_string(i * 7919 % 100003) + "\"}";
    text += line + std::string(99 - line.size(), ' ') + "\n";
  }
  const std::string plain = write("data.jsonl", text);
  for (const auto& suffix : kSuffixes) {
    const std::string packed = plain + suffix;
    ASSERT_NO_FATAL_FAILURE(compress_file(plain, packed, suffix));
    const std::string bytes = lnfree::read_file(packed);
    const std::string cut = write("cut.jsonl" + suffix, bytes.substr(0, bytes.size() / 2));
    const std::string message = error_reading(cut);
    std::printf("%s\n", message.c_str());
    std::smatch m;
    ASSERT_TRUE(
        std::regex_search(message, m,
                          std::regex(std::regex_replace(cut, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                                     R"(:(\d+): corrupt (\w+) data, detected at uncompressed byte (\d+))")))
        << suffix << ": " << message;
    EXPECT_EQ(m[2].str(), lnfree::data::compression_name(compression_of_suffix(suffix)));
    const std::uint64_t line = std::stoull(m[1].str()), byte = std::stoull(m[3].str());
    EXPECT_EQ(line, byte / 100 + 1) << message;
    EXPECT_LT(byte, text.size()) << message;
    EXPECT_NE(message.find("truncated"), std::string::npos) << message;
  }
}

TEST_F(CompressedInput, CorruptDataIsAnErrorNotACrash) {
  std::string text;
  for (int i = 0; i < 5000; ++i) text += "{\"text\": \"document " + std::to_string(i) + "\"}\n";
  const std::string plain = write("data.jsonl", text);
  for (const auto& suffix : kSuffixes) {
    const std::string packed = plain + suffix;
    ASSERT_NO_FATAL_FAILURE(compress_file(plain, packed, suffix));
    std::string bytes = lnfree::read_file(packed);
    for (std::size_t i = bytes.size() / 3; i < bytes.size() / 3 + 16; ++i)
      bytes[i] = static_cast<char>(~bytes[i]);
    const std::string bad = write("bad.jsonl" + suffix, bytes);
    const std::string message = error_reading(bad);
    std::printf("%s\n", message.c_str());
    EXPECT_EQ(message.rfind(bad + ":", 0), 0u) << suffix << ": " << message;
    EXPECT_NE(message.find("corrupt"), std::string::npos) << suffix << ": " << message;
  }
}

TEST_F(CompressedInput, NameAndMagicMustAgree) {
  const std::string plain = write("page.jsonl.zst", "<!DOCTYPE html>\n");
  std::string message = error_reading(plain);
  EXPECT_NE(message.find(plain + ": named *.zst but does not start with zstd's magic bytes (it starts with "
                                 "3c 21 44 4f 43 54 59 50)"),
            std::string::npos)
      << message;

  const std::string source = write("data.jsonl", "x\n");
  ASSERT_NO_FATAL_FAILURE(compress_file(source, source + ".gz", ".gz"));
  const std::string renamed = (root_ / "data.jsonl.xz").string();
  fs::rename(source + ".gz", renamed);
  message = error_reading(renamed);
  EXPECT_NE(message.find(renamed + ": named *.xz but holds gzip data"), std::string::npos) << message;

  const std::string empty = write("empty.jsonl.gz", "");
  message = error_reading(empty);
  EXPECT_NE(message.find(empty + ": empty file; expected gzip data"), std::string::npos) << message;

  // The magic decides: gzip data under a plain name is still read (a text file never has the magic).
  ASSERT_NO_FATAL_FAILURE(compress_file(source, source + ".gz", ".gz"));
  const std::string unnamed = (root_ / "unnamed.jsonl").string();
  fs::rename(source + ".gz", unnamed);
  EXPECT_EQ(LineReader(unnamed).compression(), Compression::kGzip);
  EXPECT_EQ(lines_of(unnamed), std::vector<std::string>{"x"});
  // An empty plain file has no lines.
  EXPECT_TRUE(lines_of(write("nothing.jsonl", "")).empty());
}
