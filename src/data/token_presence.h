// Which token ids occur in a split, for "The Pile-filtered" (spec §7.4): the evaluation drops every
// sequence holding a token the fine-tuning data never showed the model.
#pragma once

#include <cstdint>
#include <vector>

namespace lnfree::data {

class TokenSplit;

// present[id] is true when `id` occurs in the split (ids as the split delivers them, so remapped
// when the split remaps). Size: max(vocab_size, largest id + 1). Streams the split in blocks.
std::vector<bool> token_presence(const TokenSplit& split);

}  // namespace lnfree::data
