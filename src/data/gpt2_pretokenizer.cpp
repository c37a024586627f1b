#include "data/gpt2_pretokenizer.h"

#include <unicode/uchar.h>

#include <array>

namespace lnfree::data {

CharClass classify_code_point(char32_t cp) {
  const auto c = static_cast<UChar32>(cp);
  const std::uint32_t category = U_GET_GC_MASK(c);
  if (category & U_GC_L_MASK) return CharClass::kLetter;
  if (category & U_GC_N_MASK) return CharClass::kNumber;
  if (u_isUWhiteSpace(c)) return CharClass::kSpace;
  return CharClass::kOther;
}

const CharClass* bmp_char_classes() {
  // Built on first use (thread-safe static initialisation), 64 KiB, shared by every scanner.
  static const std::array<CharClass, 0x10000> table = [] {
    std::array<CharClass, 0x10000> classes{};
    for (char32_t cp = 0; cp < 0x10000; ++cp) classes[cp] = classify_code_point(cp);
    return classes;
  }();
  return table.data();
}

}  // namespace lnfree::data
