// libFuzzer target: GPT-2's tokenizer on arbitrary bytes. Encoding never fails and decodes back to
// the input with ill-formed UTF-8 repaired (the documented behaviour, utf8.h); every id is in the
// vocabulary. The same bytes read as little-endian uint16 ids must decode or raise lnfree::Error.
// The BPE files come from data/bpe (launch/setup.sh), or $LNFREE_FUZZ_BPE_DIR.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "data/gpt2_tokenizer.h"
#include "data/utf8.h"
#include "fuzz_support.h"

namespace {

const lnfree::data::Gpt2Tokenizer& tokenizer() {
  static const lnfree::data::Gpt2Tokenizer instance = [] {
    const char* dir = std::getenv("LNFREE_FUZZ_BPE_DIR");
    return lnfree::data::Gpt2Tokenizer::from_directory(dir && *dir ? dir : LNFREE_DATA_DIR "/bpe");
  }();
  return instance;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& bpe = tokenizer();
  const std::string_view text = lnfree::fuzz::as_text(data, size);
  const std::vector<std::int32_t> ids = bpe.encode(text);
  for (std::int32_t id : ids) FUZZ_CHECK(id >= 0 && id < bpe.vocab_size(), "id " + std::to_string(id));
  FUZZ_CHECK(ids.empty() == text.empty(), "empty encoding of non-empty text (or the reverse)");
  FUZZ_CHECK(bpe.decode(ids) == lnfree::data::replace_invalid_utf8(text), "decode(encode(text)) != text");

  std::vector<std::int32_t> raw(size / 2);
  for (std::size_t i = 0; i < raw.size(); ++i) {
    std::uint16_t id;
    std::memcpy(&id, data + 2 * i, 2);
    raw[i] = id;
  }
  lnfree::fuzz::run_expecting_errors([&] { (void)bpe.decode(raw); });
  return 0;
}
