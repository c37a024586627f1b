// GPT-2's pre-tokenisation (the regex of OpenAI's encoder.py and of tiktoken's "gpt2" encoding)
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// as a hand-written scanner over code points: no regex engine, no backtracking, one pass.
//
// The character classes come from ICU: \p{L} is general category L*, \p{N} is N*, and \s is what
// it means in Rust's regex crate, which tiktoken uses: the Unicode White_Space property (so NBSP,
// U+3000 and U+0085 are spaces; U+200B and U+180E are not). The contractions are ASCII and
// case-sensitive, as in GPT-2: "'S" is not a contraction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace lnfree::data {

enum class CharClass : std::uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3 };

// ICU's classification of any code point.
CharClass classify_code_point(char32_t cp);

// The classes of U+0000..U+FFFF, looked up once from ICU (the scanner's fast path).
const CharClass* bmp_char_classes();

// Splits valid UTF-8 text into GPT-2 pre-tokens. The text must be well-formed UTF-8 (see utf8.h);
// the text is not copied and must outlive the scanner.
class Gpt2PreTokenizer {
 public:
  explicit Gpt2PreTokenizer(std::string_view text)
      : data_(reinterpret_cast<const std::uint8_t*>(text.data())),
        size_(text.size()),
        classes_(bmp_char_classes()) {}

  // Stores the next pre-token in `piece` and returns true, or returns false at the end.
  bool next(std::string_view& piece) {
    if (pos_ >= size_) return false;
    const std::size_t start = pos_;
    const std::uint8_t first = data_[start];
    if (first == '\'' && start + 1 < size_) {
      const std::uint8_t c1 = data_[start + 1];
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return emit(start, start + 2, piece);
      if (start + 2 < size_) {
        const std::uint8_t c2 = data_[start + 2];
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
          return emit(start, start + 3, piece);
        }
      }
    }
    std::size_t run = start;  // where the run of one class begins (after an optional ' ')
    int len = 0;
    CharClass cls = class_at(run, len);
    if (first == ' ' && start + 1 < size_) {
      int next_len = 0;
      const CharClass next_cls = class_at(start + 1, next_len);
      if (next_cls != CharClass::kSpace) {  // " ?\p{L}+", " ?\p{N}+" or " ?[^\s\p{L}\p{N}]+"
        run = start + 1;
        cls = next_cls;
        len = next_len;
      }
    }
    std::size_t end = run + static_cast<std::size_t>(len);
    if (cls != CharClass::kSpace) {
      while (end < size_ && class_at(end, len) == cls) end += static_cast<std::size_t>(len);
      return emit(start, end, piece);
    }
    // "\s+(?!\S)|\s+": a run of spaces followed by a non-space gives up its last code point (which
    // then prefixes the next word), unless that would leave nothing.
    std::size_t last = start;
    while (end < size_ && class_at(end, len) == CharClass::kSpace) {
      last = end;
      end += static_cast<std::size_t>(len);
    }
    if (end < size_ && last > start) end = last;
    return emit(start, end, piece);
  }

 private:
  bool emit(std::size_t begin, std::size_t end, std::string_view& piece) {
    piece = std::string_view(reinterpret_cast<const char*>(data_) + begin, end - begin);
    pos_ = end;
    return true;
  }

  // Class of the code point at byte `i`; `len` receives its length in bytes.
  CharClass class_at(std::size_t i, int& len) const {
    const std::uint8_t* p = data_ + i;
    const std::uint8_t b = p[0];
    if (b < 0x80) {
      len = 1;
      return classes_[b];
    }
    if (b < 0xE0) {
      len = 2;
      return classes_[((b & 0x1Fu) << 6) | (p[1] & 0x3Fu)];
    }
    if (b < 0xF0) {
      len = 3;
      return classes_[((b & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu)];
    }
    len = 4;
    return classify_code_point(((b & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) |
                               (p[3] & 0x3Fu));
  }

  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
  const CharClass* classes_;
};

}  // namespace lnfree::data
