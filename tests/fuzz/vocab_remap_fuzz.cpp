// libFuzzer target: a `lnfree vocab` JSON file (data.vocab_remap of a run), read by VocabRemap::load.
// A remap that loads maps every GPT-2 id, and every id outside the table, into its vocabulary.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "data/vocab_remap.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using lnfree::data::VocabRemap;
  const std::string path = lnfree::fuzz::scratch_dir() + "/vocab.json";
  lnfree::fuzz::write_bytes(path, lnfree::fuzz::as_text(data, size));
  lnfree::fuzz::run_expecting_errors([&] {
    const VocabRemap remap = VocabRemap::load(path);
    std::vector<std::int64_t> ids = {-1, 0, VocabRemap::kGpt2EndOfText, VocabRemap::kGpt2EndOfText + 1,
                                     1 << 20};
    for (std::int32_t id : remap.kept()) ids.push_back(id);
    remap.apply(ids.data(), ids.size());
    for (std::int64_t id : ids)
      FUZZ_CHECK(id >= 0 && id < remap.vocab_size(), "id outside the remapped vocabulary");
  });
  return 0;
}
