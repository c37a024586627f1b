// libFuzzer target: the input is a whole token shard file (256-byte header, then the tokens). A shard
// TokenShard::open accepts must hand out exactly the file's token bytes: the map is not seen by
// ASan (reads past it inside its last page go unnoticed), so the tokens are compared with the input.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "data/token_shard.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using lnfree::data::TokenShard;
  const std::string path = lnfree::fuzz::scratch_dir() + "/input.bin";
  lnfree::fuzz::write_bytes(path, lnfree::fuzz::as_text(data, size));
  lnfree::fuzz::run_expecting_errors([&] {
    const TokenShard shard = TokenShard::open(path);
    const auto& header = shard.header();
    const std::size_t width = static_cast<std::size_t>(header.dtype);
    FUZZ_CHECK(lnfree::data::kShardHeaderBytes + shard.size() * width == size, "token count vs file size");
    std::vector<std::int64_t> tokens(shard.size());
    shard.copy(0, shard.size(), tokens.data());
    for (std::uint64_t i = 0; i < shard.size(); ++i) {
      std::uint32_t expected = 0;
      std::memcpy(&expected, data + lnfree::data::kShardHeaderBytes + i * width, width);
      FUZZ_CHECK(tokens[i] == expected && shard.at(i) == expected, "token " + std::to_string(i));
    }
    // A shard that opens re-encodes to the same header bytes.
    FUZZ_CHECK(lnfree::data::encode_shard_header(header) ==
                   lnfree::fuzz::as_text(data, lnfree::data::kShardHeaderBytes),
               "encode_shard_header(open(file).header()) differs from the file's header");
    // Ranges past the end are errors, never reads.
    std::int64_t one = 0;
    try {
      shard.copy(shard.size(), 1, &one);
      FUZZ_CHECK(false, "copy past the end did not throw");
    } catch (const lnfree::Error&) {
    }
  });
  return 0;
}
