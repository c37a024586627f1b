// UTF-8 validation and repair. Ill-formed input is repaired the way Python's
// bytes.decode("utf-8", errors="replace") and WHATWG decoders (node's Buffer.toString) repair it:
// every maximal subpart of an ill-formed sequence (Unicode 15, section 3.9, "substitution of
// maximal subparts") becomes one U+FFFD. So "\xE2\x82" (a truncated euro sign) is one U+FFFD, and
// an encoded surrogate "\xED\xA0\x80" is three, exactly as node's reference tokenizer sees them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lnfree::data {

// Length of the well-formed sequence at `p` (1 to 4 bytes), or minus the length of the maximal
// ill-formed subpart starting there (which is then replaced by one U+FFFD). `avail` >= 1.
inline int utf8_sequence_length(const std::uint8_t* p, std::size_t avail) {
  const std::uint8_t lead = p[0];
  if (lead < 0x80) return 1;
  int trailing = 0;
  std::uint8_t second_min = 0x80, second_max = 0xBF;  // Table 3-7 of the Unicode standard
  if (lead >= 0xC2 && lead <= 0xDF) {
    trailing = 1;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    trailing = 2;
    if (lead == 0xE0) second_min = 0xA0;  // no overlong 3-byte forms
    if (lead == 0xED) second_max = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    trailing = 3;
    if (lead == 0xF0) second_min = 0x90;  // no overlong 4-byte forms
    if (lead == 0xF4) second_max = 0x8F;  // nothing above U+10FFFF
  } else {
    return -1;  // continuation byte, C0/C1 or F5..FF: never a lead byte
  }
  for (int k = 1; k <= trailing; ++k) {
    if (static_cast<std::size_t>(k) >= avail) return -k;
    const std::uint8_t b = p[k];
    const bool ok = (k == 1) ? (b >= second_min && b <= second_max) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return -k;
  }
  return trailing + 1;
}

// Length of the longest well-formed prefix of `text` (text.size() when all of it is valid).
std::size_t valid_utf8_prefix(std::string_view text);

// `text` with every maximal ill-formed subpart replaced by U+FFFD (bytes EF BF BD).
std::string replace_invalid_utf8(std::string_view text);

}  // namespace lnfree::data
