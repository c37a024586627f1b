#include "data/token_presence.h"

#include <algorithm>
#include <cstddef>

#include "data/token_loader.h"

namespace lnfree::data {

std::vector<bool> token_presence(const TokenSplit& split) {
  std::vector<bool> present(split.vocab_size(), false);
  constexpr std::uint64_t kBlock = 1 << 20;
  std::vector<std::int64_t> buffer(kBlock);
  for (std::uint64_t begin = 0; begin < split.size(); begin += kBlock) {
    const std::uint64_t n = std::min<std::uint64_t>(kBlock, split.size() - begin);
    split.copy(begin, n, buffer.data());
    for (std::uint64_t i = 0; i < n; ++i) {
      const auto id = static_cast<std::size_t>(buffer[i]);
      if (id >= present.size()) present.resize(id + 1, false);
      present[id] = true;
    }
  }
  return present;
}

}  // namespace lnfree::data
