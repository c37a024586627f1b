// Randomness whose results are fixed by the seed alone, on every platform and standard library:
// the train/val split (prepare.h) and the training order (token_loader.h) must not change when
// the compiler, the libstdc++ version or the machine does, so neither uses <random>'s
// distributions (their algorithms are implementation-defined). Everything here is plain 64-bit
// integer arithmetic.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace lnfree::data {

// SplitMix64's output function (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
inline std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// SplitMix64 generator: state advances by the golden-ratio increment, each output is mix64(state).
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}

  std::uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ULL;
    return mix64(state_);
  }

  // Uniform in [0, bound), bound > 0, without modulo bias: outputs below 2^64 mod bound are
  // rejected so the accepted range is a whole number of `bound`-sized blocks.
  std::uint64_t uniform_below(std::uint64_t bound) {
    const std::uint64_t threshold = (0 - bound) % bound;
    for (;;) {
      const std::uint64_t x = next();
      if (x >= threshold) return x % bound;
    }
  }

 private:
  std::uint64_t state_;
};

// FNV-1a, 64-bit: a stable hash of a byte string (document ids).
inline std::uint64_t fnv1a64(std::string_view bytes) {
  std::uint64_t h = 0xCBF29CE484222325ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001B3ULL;
  }
  return h;
}

// Maps 64 random bits to [0, 1) using the top 53 bits (exact in a double).
inline double unit_interval(std::uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

// A permutation of 0..n-1 by Fisher-Yates (Durstenfeld's variant: i from n-1 down to 1 swaps
// element i with a uniform j in [0, i]), drawing from SplitMix64(seed).
inline std::vector<std::uint64_t> seeded_permutation(std::uint64_t n, std::uint64_t seed) {
  std::vector<std::uint64_t> order(n);
  for (std::uint64_t i = 0; i < n; ++i) order[i] = i;
  SplitMix64 rng(seed);
  for (std::uint64_t i = n; i > 1; --i) {
    const std::uint64_t j = rng.uniform_below(i);
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

}  // namespace lnfree::data
