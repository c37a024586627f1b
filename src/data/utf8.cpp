#include "data/utf8.h"

#include <cstring>

namespace lnfree::data {

std::size_t valid_utf8_prefix(std::string_view text) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    // Most text is ASCII: skip eight bytes at a time while no high bit is set.
    if (i + 8 <= n) {
      std::uint64_t word;
      std::memcpy(&word, p + i, 8);
      if ((word & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    const int len = utf8_sequence_length(p + i, n - i);
    if (len < 0) return i;
    i += static_cast<std::size_t>(len);
  }
  return n;
}

std::string replace_invalid_utf8(std::string_view text) {
  static constexpr char kReplacement[] = "\xEF\xBF\xBD";
  const auto* p = reinterpret_cast<const std::uint8_t*>(text.data());
  const std::size_t n = text.size();
  std::string out;
  out.reserve(n + n / 2);
  std::size_t i = 0;
  while (i < n) {
    const std::size_t valid = valid_utf8_prefix(text.substr(i));
    out.append(text.data() + i, valid);
    i += valid;
    if (i == n) break;
    const int len = utf8_sequence_length(p + i, n - i);  // negative here: an ill-formed subpart
    out.append(kReplacement, 3);
    i += static_cast<std::size_t>(-len);
  }
  return out;
}

}  // namespace lnfree::data
