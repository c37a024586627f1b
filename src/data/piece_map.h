// Open-addressing hash map from byte strings to short sequences of token ids, used by the GPT-2
// tokenizer for its vocabulary (token bytes -> id) and for its cache (pre-token -> ids).
//
// Lookups are the tokenizer's hot path and are bound by memory latency, so a slot holds keys of up
// to 8 bytes and single ids inline: a typical lookup touches one 24-byte slot and nothing else.
// Longer keys and id sequences live in two flat arenas. Keys are hashed and compared with whole-word
// loads (no library calls), and the caller hashes a pre-token once for both maps (PieceKey).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lnfree::data {

// A byte string with its hash and, for up to 8 bytes, its bytes as one zero-padded word.
struct PieceKey {
  std::string_view bytes;
  std::uint64_t hash = 0;
  std::uint64_t word = 0;  // the bytes, little-endian and zero-padded, when bytes.size() <= 8

  explicit PieceKey(std::string_view text) : bytes(text) {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    std::uint64_t h = 0x9E3779B97F4A7C15ULL ^ (n * 0xC2B2AE3D27D4EB4FULL);
    if (n <= 8) {
      word = small_word(p, n);
      hash = mix(h ^ word);
      return;
    }
    std::size_t i = 0;
    for (; i + 8 < n; i += 8) h = mix(h ^ load64(p + i));
    hash = mix(h ^ load64(p + n - 8));  // the last 8 bytes, overlapping the previous word
  }

  static std::uint64_t load64(const unsigned char* p) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
  static std::uint64_t load32(const unsigned char* p) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
  // Exact zero-padded word of n <= 8 bytes from at most two overlapping loads.
  static std::uint64_t small_word(const unsigned char* p, std::size_t n) {
    if (n >= 4) return load32(p) | (load32(p + n - 4) << (8 * (n - 4)));
    if (n == 0) return 0;
    return std::uint64_t{p[0]} | (std::uint64_t{p[n / 2]} << (8 * (n / 2))) |
           (std::uint64_t{p[n - 1]} << (8 * (n - 1)));
  }
  // Equality of two n-byte strings, n > 8, by 8-byte words.
  static bool equal_long(const unsigned char* a, const unsigned char* b, std::size_t n) {
    for (std::size_t i = 0; i + 8 < n; i += 8) {
      if (load64(a + i) != load64(b + i)) return false;
    }
    return load64(a + n - 8) == load64(b + n - 8);
  }
  static std::uint64_t mix(std::uint64_t x) {  // splitmix64's finaliser
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 31;
    x *= 0x94D049BB133111EBULL;
    x ^= x >> 29;
    return x;
  }
};

class PieceMap {
 public:
  struct Ids {
    const std::int32_t* data = nullptr;
    std::uint32_t size = 0;  // 0: not found
  };

  std::size_t size() const { return size_; }

  // The ids stored for `key`; valid until the next insert() or clear().
  Ids find(const PieceKey& key) const {
    if (slots_.empty()) return {};
    const std::size_t n = key.bytes.size();
    const auto tag = static_cast<std::uint32_t>(key.hash >> 32);
    for (std::size_t i = key.hash & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.ids_size == 0) return {};
      if (slot.tag != tag || slot.key_size != n) continue;
      const bool equal =
          n <= 8 ? slot.key == key.word
                 : PieceKey::equal_long(reinterpret_cast<const unsigned char*>(keys_.data()) + slot.key,
                                        reinterpret_cast<const unsigned char*>(key.bytes.data()), n);
      if (!equal) continue;
      return {slot.ids_size == 1 ? &slot.ids : ids_.data() + slot.ids, slot.ids_size};
    }
  }

  // Adds key -> ids[0..count). The key must not be present yet; 1 <= count < 65536.
  void insert(const PieceKey& key, const std::int32_t* ids, std::uint32_t count) {
    if (2 * (size_ + 1) > slots_.size()) grow();
    Slot slot;
    slot.tag = static_cast<std::uint32_t>(key.hash >> 32);
    slot.key_size = static_cast<std::uint16_t>(key.bytes.size());
    slot.ids_size = static_cast<std::uint16_t>(count);
    slot.hash_low = static_cast<std::uint32_t>(key.hash);
    if (key.bytes.size() <= 8) {
      slot.key = key.word;
    } else {
      slot.key = keys_.size();
      keys_.append(key.bytes);
    }
    if (count == 1) {
      slot.ids = ids[0];
    } else {
      slot.ids = static_cast<std::int32_t>(ids_.size());
      ids_.insert(ids_.end(), ids, ids + count);
    }
    place(slot);
    ++size_;
  }

  void clear() {
    slots_.assign(slots_.size(), Slot{});
    keys_.clear();
    ids_.clear();
    size_ = 0;
  }

 private:
  struct Slot {
    std::uint64_t key = 0;       // the key's word (<= 8 bytes) or its offset in keys_
    std::uint32_t tag = 0;       // high half of the hash
    std::uint32_t hash_low = 0;  // low half: the home slot, kept for growing
    std::uint16_t key_size = 0;
    std::uint16_t ids_size = 0;  // 0 marks an empty slot
    std::int32_t ids = 0;        // the id when ids_size == 1, else the offset in ids_
  };
  static_assert(sizeof(Slot) == 24, "a slot is 24 bytes");

  void place(const Slot& slot) {
    std::size_t i = slot.hash_low & mask_;
    while (slots_[i].ids_size != 0) i = (i + 1) & mask_;
    slots_[i] = slot;
  }

  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 1024 : 2 * old.size(), Slot{});
    mask_ = slots_.size() - 1;
    for (const Slot& slot : old) {
      if (slot.ids_size != 0) place(slot);
    }
  }

  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  std::string keys_;
  std::vector<std::int32_t> ids_;
  std::size_t size_ = 0;
};

}  // namespace lnfree::data
