// Token shards: the binary files `lnfree prepare` writes and the training loader memory-maps.
//
// Layout (all integers little-endian; docs/data.md has the same table):
//   offset  size  field
//        0     8  magic            "LNFTOKS\0"
//        8     4  format_version   u32, 1
//       12     4  token_dtype      u32, bytes per token: 2 = uint16, 4 = uint32
//       16     8  token_count      u64
//       24     4  vocab_size       u32, every token id is < vocab_size
//       28     4  reserved         zero
//       32   128  tokenizer_hash   ASCII hex digest of the tokenizer, NUL-padded (at most 127 chars)
//      160    96  reserved         zero
//      256     -  tokens           token_count x token_dtype
// uint16 is used whenever vocab_size <= 65536, so GPT-2's 50257 ids take 2 bytes each. Tokens start
// at byte 256, so a page-aligned memory map gives aligned uint16/uint32 arrays.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "util/files.h"

namespace lnfree::data {

inline constexpr char kShardMagic[8] = {'L', 'N', 'F', 'T', 'O', 'K', 'S', '\0'};
inline constexpr std::uint32_t kShardFormatVersion = 1;
inline constexpr std::size_t kShardHeaderBytes = 256;
inline constexpr std::size_t kShardHashBytes = 128;

enum class TokenDtype : std::uint32_t { kUint16 = 2, kUint32 = 4 };

// uint16 when every id of a `vocab_size` vocabulary fits, else uint32.
TokenDtype dtype_for_vocab(std::int64_t vocab_size);
const char* token_dtype_name(TokenDtype dtype);

struct ShardHeader {
  std::uint32_t format_version = kShardFormatVersion;
  TokenDtype dtype = TokenDtype::kUint16;
  std::uint64_t token_count = 0;
  std::uint32_t vocab_size = 0;
  std::string tokenizer_hash;
};

// The 256 header bytes. Throws lnfree::Error when the hash does not fit its field.
std::string encode_shard_header(const ShardHeader& header);

// Collects the tokens of one shard in their on-disk width and writes them atomically.
class TokenShardBuilder {
 public:
  TokenShardBuilder(std::int64_t vocab_size, std::string tokenizer_hash);

  // Throws lnfree::Error for an id outside [0, vocab_size).
  void append(const std::int32_t* ids, std::size_t count);
  void append(const std::vector<std::int32_t>& ids) { append(ids.data(), ids.size()); }

  std::uint64_t size() const { return bytes_.size() / static_cast<std::size_t>(dtype_); }
  TokenDtype dtype() const { return dtype_; }

  // Writes header + tokens to `path` (temp file + rename) and empties the builder.
  void write_and_clear(const std::string& path);

 private:
  std::uint32_t vocab_size_;
  std::string tokenizer_hash_;
  TokenDtype dtype_;
  std::string bytes_;
};

// A memory-mapped, validated shard.
class TokenShard {
 public:
  // Validates magic, version, dtype, vocab size against dtype, reserved bytes, and the file size
  // against token_count; if `expected_tokenizer_hash` is not empty, also the tokenizer hash. Every
  // error names the file, the field and what was expected.
  static TokenShard open(const std::string& path, const std::string& expected_tokenizer_hash = "",
                         const char* expected_from = "the tokenizer in use");

  const ShardHeader& header() const { return header_; }
  const std::string& path() const { return map_.path(); }
  std::uint64_t size() const { return header_.token_count; }

  std::uint32_t at(std::uint64_t index) const;
  // Copies tokens [begin, begin + count) widened to int64; the range must lie inside the shard.
  void copy(std::uint64_t begin, std::uint64_t count, std::int64_t* out) const;

 private:
  TokenShard(MappedFile map, ShardHeader header);
  MappedFile map_;
  ShardHeader header_;
  const std::uint8_t* tokens_ = nullptr;
};

}  // namespace lnfree::data
