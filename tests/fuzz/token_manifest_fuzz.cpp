// libFuzzer target: the input is a manifest.json, read by TokenSplit::from_manifest from a folder that
// also holds two valid shards (train-00000.bin: 5 tokens, val-00000.bin: 3 tokens, tokenizer hash
// a041a40792d3ea77, as the seeds in tests/fuzz/token_manifest/ name them). Whatever the manifest
// says, the result is an lnfree::Error or a split whose tokens are the shards' tokens.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "data/token_loader.h"
#include "fuzz_support.h"

namespace {

const char* const kHash = "a041a40792d3ea77";

const std::string& fixture_dir() {
  static const std::string dir = [] {
    const std::string made = lnfree::fuzz::scratch_dir();
    lnfree::data::TokenShardBuilder train(50257, kHash), val(50257, kHash);
    train.append({50256, 464, 2068, 7586, 21831});
    val.append({50256, 15496, 13});
    train.write_and_clear(made + "/train-00000.bin");
    val.write_and_clear(made + "/val-00000.bin");
    return made;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& dir = fixture_dir();
  lnfree::fuzz::write_bytes(dir + "/manifest.json", lnfree::fuzz::as_text(data, size));
  for (const char* split_name : {"train", "val"}) {
    lnfree::fuzz::run_expecting_errors([&] {
      const auto split = lnfree::data::TokenSplit::from_manifest(dir, split_name, kHash);
      // At most a handful of shards can be listed in an input of -max_len bytes; each is one of the two.
      FUZZ_CHECK(split->size() <= 5 * size, "more tokens than the listed shards hold");
      std::vector<std::int64_t> tokens(split->size());
      split->copy(0, split->size(), tokens.data());
      for (std::int64_t t : tokens)
        FUZZ_CHECK(t >= 0 && t < split->vocab_size(), "token outside the vocabulary");
      if (split->window_count(1) > 0) {
        std::int64_t window[2];
        split->copy_window(split->window_count(1) - 1, 1, window);
      }
    });
  }
  return 0;
}
