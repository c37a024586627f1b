// GPT-2's byte-level BPE with tiktoken's exact semantics:
//
// * Text is split into pre-tokens by GPT-2's pattern (gpt2_pretokenizer.h). The literal
//   "<|endoftext|>" is cut out first and becomes kEndOfText, as tiktoken's
//   encode(text, allowed_special="all"); the text between two of them is split on its own.
// * A pre-token that is itself a token becomes that token. Otherwise its bytes start as one part
//   each and the adjacent pair whose concatenation has the lowest rank is merged, the leftmost on a
//   tie, until no concatenation is a token (tiktoken's _byte_pair_merge). For GPT-2 a token's rank
//   is its id: loading checks this the way tiktoken's data_gym_to_mergeable_bpe_ranks does, so
//   "rank of a pair" is "id of the merged token", kept in a table keyed by the two ids.
// * Invalid UTF-8 input: every maximal ill-formed subpart becomes U+FFFD before anything else
//   (utf8.h), the same text that Python's errors="replace" and node's reference tokenizer see.
//   Decoding such ids gives the UTF-8 bytes of U+FFFD, so invalid bytes never survive a round trip.
//
// Speed: each pre-token is hashed once and looked up in the vocabulary, then in a cache of earlier
// results; BPE runs only on misses. Thread-safety: a tokenizer is immutable after loading, so
// encode() and decode() may run concurrently on any number of threads. The cache is thread_local
// (no locks); each thread keeps one cache for the tokenizer it used last, emptied when it switches
// to another tokenizer or when the cache reaches kMaxCacheEntries.
#include "data/gpt2_tokenizer.h"

#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <queue>
#include <utility>

#include "data/gpt2_pretokenizer.h"
#include "data/piece_map.h"
#include "data/utf8.h"
#include "util/error.h"
#include "util/files.h"

namespace lnfree::data {
namespace {

constexpr std::string_view kEndOfTextText = "<|endoftext|>";
constexpr std::int32_t kNoMerge = INT32_MAX;
// Cache size limit (about 16 MB per thread); when full, the cache starts over.
constexpr std::size_t kMaxCacheEntries = 1u << 18;
// Pre-tokens up to this many bytes merge with the quadratic scan (fastest for words); longer ones
// (digit runs, long symbols) use a heap, O(n log n).
constexpr std::size_t kShortPiece = 64;
// Longer pre-tokens are rare and are not cached.
constexpr std::size_t kMaxCachedPiece = 256;

// GPT-2's byte <-> unicode map (bytes_to_unicode in OpenAI's encoder.py): printable Latin-1 bytes
// stand for themselves, the other 68 bytes map to U+0100.. in byte order. The bytes that stand for
// themselves come first in rank order, which is also the order of the 256 single-byte tokens.
struct ByteUnicodeMap {
  std::array<char32_t, 256> byte_to_cp{};
  std::array<std::uint8_t, 256> rank_order{};  // rank_order[r] = byte whose single-byte token has rank r
  std::array<std::int16_t, 324> cp_to_byte{};  // -1 where the code point stands for no byte

  ByteUnicodeMap() {
    cp_to_byte.fill(-1);
    auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); };
    int rank = 0;
    for (int b = 0; b < 256; ++b) {
      if (printable(b)) {
        byte_to_cp[b] = static_cast<char32_t>(b);
        rank_order[rank++] = static_cast<std::uint8_t>(b);
      }
    }
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      if (!printable(b)) {
        byte_to_cp[b] = static_cast<char32_t>(256 + extra++);
        rank_order[rank++] = static_cast<std::uint8_t>(b);
      }
    }
    for (int b = 0; b < 256; ++b) cp_to_byte[byte_to_cp[b]] = static_cast<std::int16_t>(b);
  }

  // Decodes a token written in GPT-2's byte alphabet (valid UTF-8, as nlohmann-json guarantees) into
  // its bytes. Returns false if a code point stands for no byte; `bad` receives it.
  bool to_bytes(std::string_view text, std::string& out, char32_t& bad) const {
    out.clear();
    const auto* p = reinterpret_cast<const std::uint8_t*>(text.data());
    std::size_t i = 0;
    while (i < text.size()) {
      const int len = utf8_sequence_length(p + i, text.size() - i);
      if (len < 0) {
        bad = 0xFFFD;
        return false;
      }
      char32_t cp = p[i];
      if (len == 2) cp = ((p[i] & 0x1Fu) << 6) | (p[i + 1] & 0x3Fu);
      if (len == 3) cp = ((p[i] & 0x0Fu) << 12) | ((p[i + 1] & 0x3Fu) << 6) | (p[i + 2] & 0x3Fu);
      if (len == 4) cp = 0x10000;  // outside the map whatever its value
      if (cp >= cp_to_byte.size() || cp_to_byte[cp] < 0) {
        bad = cp;
        return false;
      }
      out.push_back(static_cast<char>(cp_to_byte[cp]));
      i += static_cast<std::size_t>(len);
    }
    return true;
  }
};

const ByteUnicodeMap& byte_unicode_map() {
  static const ByteUnicodeMap map;
  return map;
}

// (left id, right id) -> id of the merged token, open addressing on 64-bit keys.
class PairMap {
 public:
  void reserve(std::size_t count) {
    std::size_t capacity = 1024;
    while (capacity < 2 * count) capacity *= 2;
    keys_.assign(capacity, kEmpty);
    values_.assign(capacity, kNoMerge);
    mask_ = capacity - 1;
  }
  void insert(std::int32_t left, std::int32_t right, std::int32_t merged) {
    const std::uint64_t key = pack(left, right);
    std::size_t i = slot_of(key);
    while (keys_[i] != kEmpty && keys_[i] != key) i = (i + 1) & mask_;
    keys_[i] = key;
    values_[i] = merged;
  }
  std::int32_t find(std::int32_t left, std::int32_t right) const {
    const std::uint64_t key = pack(left, right);
    for (std::size_t i = slot_of(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return values_[i];
      if (keys_[i] == kEmpty) return kNoMerge;
    }
  }

 private:
  static constexpr std::uint64_t kEmpty = ~0ULL;
  static std::uint64_t pack(std::int32_t left, std::int32_t right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
           static_cast<std::uint32_t>(right);
  }
  std::size_t slot_of(std::uint64_t key) const { return ((key * 0x9E3779B97F4A7C15ULL) >> 17) & mask_; }

  std::vector<std::uint64_t> keys_;
  std::vector<std::int32_t> values_;
  std::size_t mask_ = 0;
};

std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t h) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001B3ULL;
  }
  return h;
}

std::atomic<std::uint64_t> next_instance_id{1};

}  // namespace

struct Gpt2Tokenizer::Impl {
  std::uint64_t instance_id = 0;
  std::int32_t vocab_size = 0;
  std::array<std::int32_t, 256> byte_token{};  // single-byte tokens
  PieceMap vocabulary;                         // ordinary token bytes -> id
  PairMap merges;                              // (left, right) -> merged id (= its rank)
  std::string token_bytes;                     // decode table: bytes of id i at
  std::vector<std::uint32_t> token_offsets;    //   [token_offsets[i], token_offsets[i + 1])
  std::string hash;

  struct Cache {
    std::uint64_t owner = 0;
    PieceMap pieces;
  };
  Cache& thread_cache() const {
    thread_local Cache cache;
    if (cache.owner != instance_id) {
      cache.pieces.clear();
      cache.owner = instance_id;
    }
    return cache;
  }

  void encode_valid(std::string_view text, std::vector<std::int32_t>& out) const;
  void encode_ordinary(std::string_view text, Cache& cache, std::vector<std::int32_t>& out) const;
  void merge_short(std::string_view piece, std::vector<std::int32_t>& out) const;
  void merge_long(std::string_view piece, std::vector<std::int32_t>& out) const;
};

void Gpt2Tokenizer::Impl::encode_valid(std::string_view text, std::vector<std::int32_t>& out) const {
  Cache& cache = thread_cache();
  std::size_t begin = 0;
  while (true) {
    const std::size_t special = text.find(kEndOfTextText, begin);
    if (special == std::string_view::npos) {
      encode_ordinary(text.substr(begin), cache, out);
      return;
    }
    encode_ordinary(text.substr(begin, special - begin), cache, out);
    out.push_back(kEndOfText);
    begin = special + kEndOfTextText.size();
  }
}

void Gpt2Tokenizer::Impl::encode_ordinary(std::string_view text, Cache& cache,
                                          std::vector<std::int32_t>& out) const {
  Gpt2PreTokenizer pretokenizer(text);
  std::string_view piece;
  while (pretokenizer.next(piece)) {
    const PieceKey key(piece);
    if (const PieceMap::Ids token = vocabulary.find(key); token.size != 0) {
      out.push_back(token.data[0]);
      continue;
    }
    if (const PieceMap::Ids cached = cache.pieces.find(key); cached.size != 0) {
      out.insert(out.end(), cached.data, cached.data + cached.size);
      continue;
    }
    const std::size_t first = out.size();
    if (piece.size() <= kShortPiece) {
      merge_short(piece, out);
    } else {
      merge_long(piece, out);
    }
    if (piece.size() > kMaxCachedPiece) continue;
    if (cache.pieces.size() >= kMaxCacheEntries) cache.pieces.clear();
    cache.pieces.insert(key, out.data() + first, static_cast<std::uint32_t>(out.size() - first));
  }
}

void Gpt2Tokenizer::Impl::merge_short(std::string_view piece, std::vector<std::int32_t>& out) const {
  // parts[i] is the token of the i-th part; ranks[i] the merged id of parts i and i+1.
  std::int32_t parts[kShortPiece];
  std::int32_t ranks[kShortPiece];
  std::size_t n = piece.size();
  for (std::size_t i = 0; i < n; ++i) parts[i] = byte_token[static_cast<unsigned char>(piece[i])];
  for (std::size_t i = 0; i + 1 < n; ++i) ranks[i] = merges.find(parts[i], parts[i + 1]);
  while (n > 1) {
    std::size_t best = 0;
    for (std::size_t i = 1; i + 1 < n; ++i) {
      if (ranks[i] < ranks[best]) best = i;
    }
    if (ranks[best] == kNoMerge) break;
    parts[best] = ranks[best];
    for (std::size_t i = best + 1; i + 1 < n; ++i) {
      parts[i] = parts[i + 1];
      ranks[i] = ranks[i + 1];
    }
    --n;
    if (best > 0) ranks[best - 1] = merges.find(parts[best - 1], parts[best]);
    if (best + 1 < n) ranks[best] = merges.find(parts[best], parts[best + 1]);
  }
  out.insert(out.end(), parts, parts + n);
}

void Gpt2Tokenizer::Impl::merge_long(std::string_view piece, std::vector<std::int32_t>& out) const {
  // The same merge order as merge_short: a min-heap of candidate pairs ordered by (rank, byte
  // position) pops the lowest rank, leftmost first. Parts form a linked list indexed by the byte
  // where they start; a heap entry is stale once either of its parts has changed.
  const auto n = static_cast<std::int32_t>(piece.size());
  std::vector<std::int32_t> token(static_cast<std::size_t>(n)), next(static_cast<std::size_t>(n)),
      prev(static_cast<std::size_t>(n));
  for (std::int32_t i = 0; i < n; ++i) {
    token[i] = byte_token[static_cast<unsigned char>(piece[i])];
    next[i] = i + 1;
    prev[i] = i - 1;
  }
  struct Candidate {
    std::int32_t rank, pos, left, right;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto consider = [&](std::int32_t pos) {
    const std::int32_t right = next[pos];
    if (right >= n) return;
    const std::int32_t rank = merges.find(token[pos], token[right]);
    if (rank != kNoMerge) heap.push({rank, pos, token[pos], token[right]});
  };
  for (std::int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const std::int32_t right = next[c.pos];
    // A merged-away part gets token -1, so candidates that start at it fail this check.
    if (token[c.pos] != c.left || right >= n || token[right] != c.right) continue;
    token[c.pos] = c.rank;
    token[right] = -1;
    next[c.pos] = next[right];
    if (next[right] < n) prev[next[right]] = c.pos;
    if (prev[c.pos] >= 0) consider(prev[c.pos]);
    consider(c.pos);
  }
  for (std::int32_t i = 0; i < n; i = next[i]) out.push_back(token[i]);
}

namespace {

// FNV-1a 64 over encoder.json, its length, and vocab.bpe.
std::string tokenizer_hash_of_texts(std::string_view encoder_text, std::string_view merges_text) {
  std::uint64_t h = 0xCBF29CE484222325ULL;  // FNV-1a 64 offset basis
  h = fnv1a64(encoder_text, h);
  const std::uint64_t encoder_size = encoder_text.size();
  h = fnv1a64(std::string_view(reinterpret_cast<const char*>(&encoder_size), sizeof encoder_size), h);
  h = fnv1a64(merges_text, h);
  return fmt::format("{:016x}", h);
}

}  // namespace

std::string tokenizer_hash_of_directory(const std::string& dir) {
  return tokenizer_hash_of_texts(read_file(dir + "/encoder.json"), read_file(dir + "/vocab.bpe"));
}

Gpt2Tokenizer Gpt2Tokenizer::from_directory(const std::string& dir) {
  const std::string encoder_path = dir + "/encoder.json";
  const std::string merges_path = dir + "/vocab.bpe";
  const std::string encoder_text = read_file(encoder_path);
  const std::string merges_text = read_file(merges_path);
  const ByteUnicodeMap& bytes = byte_unicode_map();
  auto impl = std::make_unique<Impl>();
  impl->instance_id = next_instance_id.fetch_add(1);

  // encoder.json: {"token in GPT-2's byte alphabet": id, ...}, ids 0..N-1 each used once.
  nlohmann::json encoder;
  try {
    encoder = nlohmann::json::parse(encoder_text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", encoder_path, e.what());
  }
  if (!encoder.is_object() || encoder.empty()) {
    fail("{}: expected a non-empty JSON object mapping token strings to ids, got {}", encoder_path,
         encoder.type_name());
  }
  const std::size_t count = encoder.size();
  std::vector<std::string> tokens(count);
  std::vector<bool> seen(count, false);
  std::string token;
  for (const auto& [key, value] : encoder.items()) {
    if (!value.is_number_integer() || value.get<std::int64_t>() < 0 ||
        value.get<std::int64_t>() >= static_cast<std::int64_t>(count)) {
      fail("{}: entry '{}': expected an integer id in [0, {}), got {}", encoder_path, key, count,
           value.dump());
    }
    const auto id = value.get<std::int32_t>();
    if (seen[id])
      fail("{}: entry '{}': id {} is used twice (also by '{}')", encoder_path, key, id, tokens[id]);
    seen[id] = true;
    char32_t bad = 0;
    if (!bytes.to_bytes(key, token, bad)) {
      fail("{}: entry '{}': character U+{:04X} is not in GPT-2's byte-to-unicode alphabet", encoder_path, key,
           static_cast<std::uint32_t>(bad));
    }
    tokens[id] = token;
  }
  const auto special = encoder.find(std::string(kEndOfTextText));
  if (special == encoder.end() || *special != kEndOfText) {
    fail("{}: entry '{}': expected id {}, got {}", encoder_path, kEndOfTextText, kEndOfText,
         special == encoder.end() ? std::string("no such entry") : special->dump());
  }
  // Single bytes: rank r must be the r-th byte of GPT-2's order (tiktoken asserts the same).
  for (int r = 0; r < 256; ++r) {
    const std::uint8_t b = bytes.rank_order[r];
    if (tokens[r] != std::string(1, static_cast<char>(b))) {
      fail("{}: id {}: expected the single byte 0x{:02X} (GPT-2's byte order), got a token of {} bytes",
           encoder_path, r, b, tokens[r].size());
    }
    impl->byte_token[b] = r;
  }

  // vocab.bpe: a "#version" line, then merge k as "LEFT RIGHT" giving token 256 + k.
  std::size_t line_start = 0;
  std::size_t line_number = 0;
  std::size_t merge_count = 0;
  std::string left, right;
  while (line_start < merges_text.size()) {
    std::size_t line_end = merges_text.find('\n', line_start);
    if (line_end == std::string::npos) line_end = merges_text.size();
    const std::string_view line(merges_text.data() + line_start, line_end - line_start);
    line_start = line_end + 1;
    ++line_number;
    if (line_number == 1) {
      if (line.substr(0, 8) != "#version") {
        fail("{}: line 1: expected a '#version' header, got '{}'", merges_path, line);
      }
      continue;
    }
    const std::size_t space = line.find(' ');
    if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string_view::npos) {
      fail("{}: line {}: expected two tokens separated by one space, got '{}'", merges_path, line_number,
           line);
    }
    char32_t bad = 0;
    if (!bytes.to_bytes(line.substr(0, space), left, bad) ||
        !bytes.to_bytes(line.substr(space + 1), right, bad)) {
      fail("{}: line {}: character U+{:04X} is not in GPT-2's byte-to-unicode alphabet", merges_path,
           line_number, static_cast<std::uint32_t>(bad));
    }
    const std::size_t expected_id = 256 + merge_count++;
    if (expected_id >= count || expected_id == static_cast<std::size_t>(kEndOfText) ||
        tokens[expected_id] != left + right) {
      fail(
          "{}: line {}: merge '{}': expected token {} of {} to be its concatenation (merge k makes token "
          "256 + k)",
          merges_path, line_number, line, expected_id, encoder_path);
    }
  }
  if (256 + merge_count + 1 != count) {
    fail("{}: expected {} merges to match the {} tokens of {}, got {}", merges_path, count - 257, count,
         encoder_path, merge_count);
  }

  impl->vocab_size = static_cast<std::int32_t>(count);
  impl->token_offsets.reserve(count + 1);
  for (std::size_t id = 0; id < count; ++id) {
    impl->token_offsets.push_back(static_cast<std::uint32_t>(impl->token_bytes.size()));
    impl->token_bytes += tokens[id];
    if (static_cast<std::int32_t>(id) == kEndOfText) continue;  // special: never looked up as a piece
    const std::int32_t token_id = static_cast<std::int32_t>(id);
    impl->vocabulary.insert(PieceKey(tokens[id]), &token_id, 1);
  }
  impl->token_offsets.push_back(static_cast<std::uint32_t>(impl->token_bytes.size()));

  // Every way of writing a token as the concatenation of two tokens is a merge with that token's
  // rank, as tiktoken looks up concatenated bytes rather than the pairs listed in vocab.bpe.
  std::vector<std::array<std::int32_t, 3>> pairs;
  for (std::size_t id = 256; id < count; ++id) {
    if (static_cast<std::int32_t>(id) == kEndOfText) continue;
    const std::string_view whole = tokens[id];
    for (std::size_t k = 1; k < whole.size(); ++k) {
      const auto a = impl->vocabulary.find(PieceKey(whole.substr(0, k)));
      const auto b = impl->vocabulary.find(PieceKey(whole.substr(k)));
      if (a.size != 0 && b.size != 0) pairs.push_back({a.data[0], b.data[0], static_cast<std::int32_t>(id)});
    }
  }
  impl->merges.reserve(pairs.size());
  for (const auto& [a, b, merged] : pairs) impl->merges.insert(a, b, merged);

  impl->hash = tokenizer_hash_of_texts(encoder_text, merges_text);
  return Gpt2Tokenizer(std::move(impl));
}

std::vector<std::int32_t> Gpt2Tokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> ids;
  ids.reserve(text.size() / 4 + 8);
  encode_append(text, ids);
  return ids;
}

void Gpt2Tokenizer::encode_append(std::string_view text, std::vector<std::int32_t>& out) const {
  if (valid_utf8_prefix(text) == text.size()) {
    impl_->encode_valid(text, out);
  } else {
    impl_->encode_valid(replace_invalid_utf8(text), out);
  }
}

std::string Gpt2Tokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string text;
  const auto& offsets = impl_->token_offsets;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::int32_t id = ids[i];
    if (id < 0 || id >= impl_->vocab_size) {
      fail("token id {} at position {} is outside the vocabulary [0, {})", id, i, impl_->vocab_size);
    }
    text.append(impl_->token_bytes, offsets[id], offsets[id + 1] - offsets[id]);
  }
  return text;
}

std::int32_t Gpt2Tokenizer::vocab_size() const { return impl_->vocab_size; }

const std::string& Gpt2Tokenizer::hash() const { return impl_->hash; }

Gpt2Tokenizer::Gpt2Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Gpt2Tokenizer::Gpt2Tokenizer(Gpt2Tokenizer&&) noexcept = default;
Gpt2Tokenizer& Gpt2Tokenizer::operator=(Gpt2Tokenizer&&) noexcept = default;
Gpt2Tokenizer::~Gpt2Tokenizer() = default;

}  // namespace lnfree::data
