#include "data/token_shard.h"

#include <algorithm>
#include <utility>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>

#include "util/error.h"

// Tokens are copied to and from the file with memcpy, which is only the little-endian layout on a
// little-endian host (every machine this project targets). The header is encoded byte by byte.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "token shards are memory-mapped as little-endian");

namespace lnfree::data {
namespace {

constexpr std::size_t kVersionOffset = 8;
constexpr std::size_t kDtypeOffset = 12;
constexpr std::size_t kCountOffset = 16;
constexpr std::size_t kVocabOffset = 24;
constexpr std::size_t kReservedAOffset = 28;
constexpr std::size_t kHashOffset = 32;
constexpr std::size_t kReservedBOffset = kHashOffset + kShardHashBytes;

void put_le(std::string& bytes, std::size_t offset, std::uint64_t value, int width) {
  for (int i = 0; i < width; ++i) bytes[offset + i] = static_cast<char>((value >> (8 * i)) & 0xFF);
}

std::uint64_t get_le(const std::uint8_t* bytes, std::size_t offset, int width) {
  std::uint64_t value = 0;
  for (int i = 0; i < width; ++i) value |= static_cast<std::uint64_t>(bytes[offset + i]) << (8 * i);
  return value;
}

// A hash is recorded as ASCII; anything unprintable or blank would be unreadable in messages.
bool is_valid_hash(const std::string& hash) {
  if (hash.empty() || hash.size() >= kShardHashBytes) return false;
  for (char c : hash) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

// Shows arbitrary bytes readably in an error message.
std::string escaped(const std::uint8_t* bytes, std::size_t n) {
  std::string out = "\"";
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t c = bytes[i];
    if (c >= ' ' && c <= '~' && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  return out + "\"";
}

void check_zero(const MappedFile& map, std::size_t begin, std::size_t end) {
  for (std::size_t i = begin; i < end; ++i) {
    if (map.data()[i] != 0) {
      fail("{}: field 'reserved' (header byte {}): expected 0, got {}; written by a newer lnfree?",
           map.path(), i, map.data()[i]);
    }
  }
}

}  // namespace

TokenDtype dtype_for_vocab(std::int64_t vocab_size) {
  if (vocab_size <= 0 || vocab_size > std::numeric_limits<std::uint32_t>::max()) {
    fail("vocabulary size: expected 1 .. 2^32-1, got {}", vocab_size);
  }
  return vocab_size <= 65536 ? TokenDtype::kUint16 : TokenDtype::kUint32;
}

const char* token_dtype_name(TokenDtype dtype) { return dtype == TokenDtype::kUint16 ? "uint16" : "uint32"; }

std::string encode_shard_header(const ShardHeader& header) {
  if (!is_valid_hash(header.tokenizer_hash)) {
    fail("token shard header: field 'tokenizer_hash': expected 1 to {} printable ASCII characters, got '{}'",
         kShardHashBytes - 1, header.tokenizer_hash);
  }
  std::string bytes(kShardHeaderBytes, '\0');
  std::memcpy(bytes.data(), kShardMagic, sizeof(kShardMagic));
  put_le(bytes, kVersionOffset, header.format_version, 4);
  put_le(bytes, kDtypeOffset, static_cast<std::uint32_t>(header.dtype), 4);
  put_le(bytes, kCountOffset, header.token_count, 8);
  put_le(bytes, kVocabOffset, header.vocab_size, 4);
  std::memcpy(bytes.data() + kHashOffset, header.tokenizer_hash.data(), header.tokenizer_hash.size());
  return bytes;
}

TokenShardBuilder::TokenShardBuilder(std::int64_t vocab_size, std::string tokenizer_hash)
    : vocab_size_(0), tokenizer_hash_(std::move(tokenizer_hash)), dtype_(dtype_for_vocab(vocab_size)) {
  vocab_size_ = static_cast<std::uint32_t>(vocab_size);
  if (!is_valid_hash(tokenizer_hash_)) {
    fail("token shard: tokenizer hash: expected 1 to {} printable ASCII characters, got '{}'",
         kShardHashBytes - 1, tokenizer_hash_);
  }
}

void TokenShardBuilder::append(const std::int32_t* ids, std::size_t count) {
  const std::size_t width = static_cast<std::size_t>(dtype_);
  const std::size_t old_size = bytes_.size();
  bytes_.resize(old_size + count * width);
  char* out = bytes_.data() + old_size;
  for (std::size_t i = 0; i < count; ++i) {
    const std::int32_t id = ids[i];
    if (id < 0 || static_cast<std::uint32_t>(id) >= vocab_size_) {
      bytes_.resize(old_size);
      fail("token shard: token id {} outside the vocabulary [0, {})", id, vocab_size_);
    }
    if (dtype_ == TokenDtype::kUint16) {
      const auto narrow = static_cast<std::uint16_t>(id);
      std::memcpy(out + i * width, &narrow, width);
    } else {
      const auto wide = static_cast<std::uint32_t>(id);
      std::memcpy(out + i * width, &wide, width);
    }
  }
}

void TokenShardBuilder::write_and_clear(const std::string& path) {
  ShardHeader header;
  header.dtype = dtype_;
  header.token_count = size();
  header.vocab_size = vocab_size_;
  header.tokenizer_hash = tokenizer_hash_;
  const std::string head = encode_shard_header(header);
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("{}: cannot open for writing: {}", tmp, std::strerror(errno));
    out.write(head.data(), static_cast<std::streamsize>(head.size()));
    out.write(bytes_.data(), static_cast<std::streamsize>(bytes_.size()));
    out.close();
    if (!out) fail("{}: write failed: {}", tmp, std::strerror(errno));
  });
  bytes_.clear();
}

TokenShard::TokenShard(MappedFile map, ShardHeader header)
    : map_(std::move(map)), header_(std::move(header)) {
  tokens_ = map_.data() + kShardHeaderBytes;
}

TokenShard TokenShard::open(const std::string& path, const std::string& expected_tokenizer_hash,
                            const char* expected_from) {
  MappedFile map(path);
  const std::uint8_t* bytes = map.data();
  if (map.size() < kShardHeaderBytes) {
    fail("{}: truncated: expected a {}-byte token shard header, the file has {} bytes", path,
         kShardHeaderBytes, map.size());
  }
  if (std::memcmp(bytes, kShardMagic, sizeof(kShardMagic)) != 0) {
    fail("{}: field 'magic': expected \"LNFTOKS\\x00\" (an lnfree token shard), got {}", path,
         escaped(bytes, sizeof(kShardMagic)));
  }
  ShardHeader header;
  header.format_version = static_cast<std::uint32_t>(get_le(bytes, kVersionOffset, 4));
  if (header.format_version != kShardFormatVersion) {
    fail("{}: field 'format_version': expected {}, got {}", path, kShardFormatVersion, header.format_version);
  }
  const auto dtype_code = static_cast<std::uint32_t>(get_le(bytes, kDtypeOffset, 4));
  if (dtype_code != static_cast<std::uint32_t>(TokenDtype::kUint16) &&
      dtype_code != static_cast<std::uint32_t>(TokenDtype::kUint32)) {
    fail("{}: field 'token_dtype': expected 2 (uint16) or 4 (uint32), got {}", path, dtype_code);
  }
  header.dtype = static_cast<TokenDtype>(dtype_code);
  header.token_count = get_le(bytes, kCountOffset, 8);
  header.vocab_size = static_cast<std::uint32_t>(get_le(bytes, kVocabOffset, 4));
  if (header.vocab_size == 0) fail("{}: field 'vocab_size': expected at least 1, got 0", path);
  if (header.dtype == TokenDtype::kUint16 && header.vocab_size > 65536) {
    fail("{}: field 'vocab_size': {} ids do not fit the uint16 token_dtype (expected at most 65536)", path,
         header.vocab_size);
  }
  check_zero(map, kReservedAOffset, kHashOffset);
  check_zero(map, kReservedBOffset, kShardHeaderBytes);

  const char* hash_field = reinterpret_cast<const char*>(bytes + kHashOffset);
  const std::size_t hash_length = strnlen(hash_field, kShardHashBytes);
  header.tokenizer_hash.assign(hash_field, hash_length);
  if (hash_length == kShardHashBytes || !is_valid_hash(header.tokenizer_hash)) {
    fail("{}: field 'tokenizer_hash': expected 1 to {} printable ASCII characters then NUL padding, got {}",
         path, kShardHashBytes - 1,
         escaped(bytes + kHashOffset, std::min<std::size_t>(hash_length + 1, kShardHashBytes)));
  }
  check_zero(map, kHashOffset + hash_length, kReservedBOffset);

  const std::uint64_t width = static_cast<std::uint64_t>(header.dtype);
  const std::uint64_t payload = map.size() - kShardHeaderBytes;
  const bool truncated = header.token_count > payload / width;
  if (truncated || header.token_count * width != payload) {
    fail(
        "{}: field 'token_count': header says {} tokens of {} after the {}-byte header, but the file has {} "
        "bytes "
        "there ({})",
        path, header.token_count, token_dtype_name(header.dtype), kShardHeaderBytes, payload,
        truncated ? "truncated" : "trailing bytes");
  }
  if (!expected_tokenizer_hash.empty() && header.tokenizer_hash != expected_tokenizer_hash) {
    fail(
        "{}: field 'tokenizer_hash': expected '{}' ({}), got '{}'; the shard was tokenized "
        "differently, re-run lnfree prepare",
        path, expected_tokenizer_hash, expected_from, header.tokenizer_hash);
  }
  return TokenShard(std::move(map), std::move(header));
}

std::uint32_t TokenShard::at(std::uint64_t index) const {
  if (index >= header_.token_count) {
    fail("{}: token index {} out of range [0, {})", path(), index, header_.token_count);
  }
  if (header_.dtype == TokenDtype::kUint16) {
    std::uint16_t v;
    std::memcpy(&v, tokens_ + index * 2, 2);
    return v;
  }
  std::uint32_t v;
  std::memcpy(&v, tokens_ + index * 4, 4);
  return v;
}

void TokenShard::copy(std::uint64_t begin, std::uint64_t count, std::int64_t* out) const {
  if (begin > header_.token_count || count > header_.token_count - begin) {
    fail("{}: token range [{}, {}) out of range [0, {})", path(), begin, begin + count, header_.token_count);
  }
  // A checked gather: the header promises every id < vocab_size, and the model's embedding is sized
  // by that promise, so an id beyond it is reported here (file and token offset) instead of as an
  // index error deep inside LibTorch hours into a run. One compare per token.
  std::uint32_t max_id = 0;
  if (header_.dtype == TokenDtype::kUint16) {
    const auto* src = reinterpret_cast<const std::uint16_t*>(tokens_) + begin;
    for (std::uint64_t i = 0; i < count; ++i) {
      out[i] = src[i];
      max_id = std::max<std::uint32_t>(max_id, src[i]);
    }
  } else {
    const auto* src = reinterpret_cast<const std::uint32_t*>(tokens_) + begin;
    for (std::uint64_t i = 0; i < count; ++i) {
      out[i] = src[i];
      max_id = std::max(max_id, src[i]);
    }
  }
  if (count > 0 && max_id >= header_.vocab_size) {
    for (std::uint64_t i = 0; i < count; ++i)
      if (out[i] >= static_cast<std::int64_t>(header_.vocab_size))
        fail("{}: token {} (byte offset {}) is id {}, outside the header's vocab_size {}: the shard is corrupt", path(),
             begin + i, kShardHeaderBytes + (begin + i) * (header_.dtype == TokenDtype::kUint16 ? 2 : 4), out[i], header_.vocab_size);
  }
}

}  // namespace lnfree::data
