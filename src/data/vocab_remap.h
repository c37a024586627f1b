// A smaller vocabulary for tiny models: the K most frequent GPT-2 tokens of a training split keep
// their own ids 0..K-1 (most frequent first), every other token becomes UNK = K, and EOT (50256)
// becomes K+1. Tiny models on CPU cannot afford GPT-2's 50257-row unembedding
// (../shared/docs/tiny-feasibility.md); UNK targets stay in the loss and the UNK share is recorded.
//
// JSON (written by `lnfree vocab`): {"format": "lnfree-vocab", "version": 1, "source",
// "tokenizer_hash", "top": K, "vocab_size": K+2, "unk_id": K, "eot_id": K+1,
// "unk_share": {"<split>": fraction, ...}, "kept": [GPT-2 ids, most frequent first]}
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace lnfree::data {

class TokenSplit;

class VocabRemap {
 public:
  static constexpr std::int32_t kGpt2EndOfText = 50256;

  // Counts the tokens of `train` and keeps the `top` most frequent (EOT excluded; ties by id).
  static VocabRemap from_counts(const TokenSplit& train, std::int64_t top);
  // Reads a `lnfree vocab` JSON file; errors name the file and field.
  static VocabRemap load(const std::string& path);
  // The same, shared (as TokenSplit takes it); nullptr for an empty path (no remapping).
  static std::shared_ptr<const VocabRemap> load_optional(const std::string& path);

  std::int64_t top() const { return static_cast<std::int64_t>(kept_.size()); }
  std::int64_t vocab_size() const { return top() + 2; }
  std::int32_t unk_id() const { return static_cast<std::int32_t>(top()); }
  std::int32_t eot_id() const { return static_cast<std::int32_t>(top() + 1); }
  const std::vector<std::int32_t>& kept() const { return kept_; }
  const std::string& origin() const { return origin_; }
  // The tokenizer hash of the data it was counted on ("" for a file without one).
  const std::string& tokenizer_hash() const { return tokenizer_hash_; }

  // Maps GPT-2 ids in place (ids outside the table become UNK).
  void apply(std::int64_t* ids, std::uint64_t count) const;
  // Fraction of a split's tokens that map to UNK.
  double unk_share(const TokenSplit& split) const;

  // The JSON above; `unk_shares` per split name, `source` and `tokenizer_hash` describe the data.
  std::string to_json(const std::string& source, const std::string& tokenizer_hash,
                      const std::map<std::string, double>& unk_shares) const;

 private:
  explicit VocabRemap(std::vector<std::int32_t> kept, std::string origin);
  std::vector<std::int32_t> kept_;
  std::vector<std::int32_t> table_;  // GPT-2 id -> new id
  std::string origin_;
  std::string tokenizer_hash_;
};

}  // namespace lnfree::data
