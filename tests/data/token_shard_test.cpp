#include "data/token_shard.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;
using lnfree::data::TokenDtype;
using lnfree::data::TokenShard;
using lnfree::data::TokenShardBuilder;

namespace {

const std::string kHash = "0123456789abcdef";

class ShardFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("lnfree_shard_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A valid uint16 shard holding 0, 1, ..., n-1; returns its path.
  std::string write_shard(const std::string& name, int n, std::int64_t vocab = 50257) {
    TokenShardBuilder builder(vocab, kHash);
    std::vector<std::int32_t> ids(n);
    for (int i = 0; i < n; ++i) ids[i] = i;
    builder.append(ids);
    const std::string path = (dir_ / name).string();
    builder.write_and_clear(path);
    return path;
  }

  // Rewrites `path` after `edit` changed its bytes.
  static void edit_file(const std::string& path, const std::function<void(std::string&)>& edit) {
    std::string bytes = lnfree::read_file(path);
    edit(bytes);
    lnfree::write_file_atomically(path, bytes);
  }

  static std::string open_error(const std::string& path, const std::string& expected_hash = "") {
    try {
      TokenShard::open(path, expected_hash);
    } catch (const lnfree::Error& e) {
      return e.what();
    }
    return "(no error)";
  }

  fs::path dir_;
};

}  // namespace

TEST_F(ShardFiles, Uint16RoundTrip) {
  TokenShardBuilder builder(50257, kHash);
  EXPECT_EQ(builder.dtype(), TokenDtype::kUint16);
  const std::vector<std::int32_t> ids = {0, 1, 50256, 65535 % 50257, 12345};
  builder.append(ids);
  const std::string path = (dir_ / "u16.bin").string();
  builder.write_and_clear(path);
  EXPECT_EQ(builder.size(), 0u);
  EXPECT_EQ(fs::file_size(path), 256u + 2 * ids.size());

  const TokenShard shard = TokenShard::open(path, kHash);
  EXPECT_EQ(shard.header().format_version, 1u);
  EXPECT_EQ(shard.header().dtype, TokenDtype::kUint16);
  EXPECT_EQ(shard.header().vocab_size, 50257u);
  EXPECT_EQ(shard.header().tokenizer_hash, kHash);
  ASSERT_EQ(shard.size(), ids.size());
  std::vector<std::int64_t> out(ids.size());
  shard.copy(0, ids.size(), out.data());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(out[i], ids[i]) << "token " << i;
    EXPECT_EQ(shard.at(i), static_cast<std::uint32_t>(ids[i]));
  }
  // The header is little-endian at fixed offsets (docs/data.md).
  const std::string bytes = lnfree::read_file(path);
  EXPECT_EQ(std::memcmp(bytes.data(), "LNFTOKS\0", 8), 0);
  EXPECT_EQ(static_cast<unsigned char>(bytes[12]), 2);                      // dtype code
  EXPECT_EQ(static_cast<unsigned char>(bytes[16]), ids.size());             // count, low byte
  EXPECT_EQ(static_cast<unsigned char>(bytes[256 + 2 * 2]), 50256 & 0xFF);  // token 2, low byte
  EXPECT_EQ(static_cast<unsigned char>(bytes[256 + 2 * 2 + 1]), 50256 >> 8);
}

TEST_F(ShardFiles, Uint32RoundTripForLargeVocabularies) {
  TokenShardBuilder builder(100000, kHash);
  EXPECT_EQ(builder.dtype(), TokenDtype::kUint32);
  const std::vector<std::int32_t> ids = {99999, 0, 65536, 70000};
  builder.append(ids);
  const std::string path = (dir_ / "u32.bin").string();
  builder.write_and_clear(path);
  EXPECT_EQ(fs::file_size(path), 256u + 4 * ids.size());
  const TokenShard shard = TokenShard::open(path);
  EXPECT_EQ(shard.header().dtype, TokenDtype::kUint32);
  std::vector<std::int64_t> out(ids.size());
  shard.copy(0, ids.size(), out.data());
  for (std::size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(out[i], ids[i]) << "token " << i;
  // 65536 ids still fit uint16.
  EXPECT_EQ(lnfree::data::dtype_for_vocab(65536), TokenDtype::kUint16);
  EXPECT_EQ(lnfree::data::dtype_for_vocab(65537), TokenDtype::kUint32);
}

TEST_F(ShardFiles, BuilderRejectsIdsOutsideTheVocabulary) {
  TokenShardBuilder builder(100, kHash);
  const std::vector<std::int32_t> bad = {5, 100};
  EXPECT_THROW(builder.append(bad), lnfree::Error);
  EXPECT_EQ(builder.size(), 0u);  // nothing half-appended
  const std::vector<std::int32_t> negative = {-1};
  EXPECT_THROW(builder.append(negative), lnfree::Error);
}

TEST_F(ShardFiles, BadMagicNamesFileAndField) {
  const std::string path = write_shard("magic.bin", 10);
  edit_file(path, [](std::string& b) { b[0] = 'X'; });
  const std::string message = open_error(path);
  EXPECT_NE(message.find(path + ": field 'magic': expected \"LNFTOKS\\x00\""), std::string::npos) << message;
}

TEST_F(ShardFiles, BadVersionNamesFileAndField) {
  const std::string path = write_shard("version.bin", 10);
  edit_file(path, [](std::string& b) { b[8] = 7; });
  const std::string message = open_error(path);
  EXPECT_NE(message.find(path + ": field 'format_version': expected 1, got 7"), std::string::npos) << message;
}

TEST_F(ShardFiles, BadDtypeNamesFileAndField) {
  const std::string path = write_shard("dtype.bin", 10);
  edit_file(path, [](std::string& b) { b[12] = 3; });
  const std::string message = open_error(path);
  EXPECT_NE(message.find(path + ": field 'token_dtype': expected 2 (uint16) or 4 (uint32), got 3"),
            std::string::npos)
      << message;
}

TEST_F(ShardFiles, TruncatedTokensNameFileAndField) {
  const std::string path = write_shard("truncated.bin", 10);
  edit_file(path, [](std::string& b) { b.resize(b.size() - 3); });
  std::string message = open_error(path);
  EXPECT_NE(message.find(path + ": field 'token_count': header says 10 tokens of uint16"), std::string::npos)
      << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;

  const std::string padded = write_shard("padded.bin", 10);
  edit_file(padded, [](std::string& b) { b += "xy"; });
  message = open_error(padded);
  EXPECT_NE(message.find("trailing bytes"), std::string::npos) << message;
}

TEST_F(ShardFiles, TruncatedHeaderNamesFile) {
  const std::string path = write_shard("short.bin", 10);
  edit_file(path, [](std::string& b) { b.resize(100); });
  const std::string message = open_error(path);
  EXPECT_NE(
      message.find(path + ": truncated: expected a 256-byte token shard header, the file has 100 bytes"),
      std::string::npos)
      << message;
}

TEST_F(ShardFiles, WrongTokenizerHashNamesFileAndField) {
  const std::string path = write_shard("hash.bin", 10);
  const std::string message = open_error(path, "fedcba9876543210");
  EXPECT_NE(message.find(
                path + ": field 'tokenizer_hash': expected 'fedcba9876543210' (the tokenizer in use), got '" +
                kHash + "'"),
            std::string::npos)
      << message;
  EXPECT_NO_THROW(TokenShard::open(path, kHash));
}

TEST_F(ShardFiles, NonZeroReservedBytesAreRejected) {
  const std::string path = write_shard("reserved.bin", 10);
  edit_file(path, [](std::string& b) { b[200] = 1; });
  const std::string message = open_error(path);
  EXPECT_NE(message.find(path + ": field 'reserved' (header byte 200): expected 0, got 1"), std::string::npos)
      << message;
}

TEST_F(ShardFiles, EmptyShardIsValid) {
  const std::string path = write_shard("empty.bin", 0);
  EXPECT_EQ(TokenShard::open(path).size(), 0u);
}
