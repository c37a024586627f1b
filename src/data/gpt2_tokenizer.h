// GPT-2's byte-level BPE (encoder.json + vocab.bpe), with GPT-2's pre-tokenisation pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// evaluated with ICU's Unicode character properties. Gives the same ids as tiktoken's "gpt2".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lnfree::data {

// The hash `Gpt2Tokenizer::hash()` gives for `dir`, from the two files alone (no parsing): what
// training and evaluation compare every manifest's tokenizer.hash with.
std::string tokenizer_hash_of_directory(const std::string& dir);

class Gpt2Tokenizer {
 public:
  static constexpr std::int32_t kEndOfText = 50256;  // "<|endoftext|>"

  // Loads `dir`/encoder.json and `dir`/vocab.bpe. Errors name the file and the bad entry.
  static Gpt2Tokenizer from_directory(const std::string& dir);

  // Encodes UTF-8 text. The literal "<|endoftext|>" becomes kEndOfText. Invalid UTF-8 is defined
  // behaviour (see the implementation's comment), never a crash.
  std::vector<std::int32_t> encode(std::string_view text) const;
  void encode_append(std::string_view text, std::vector<std::int32_t>& out) const;

  // Decodes ids back to bytes. Throws lnfree::Error for an id outside the vocabulary.
  std::string decode(const std::vector<std::int32_t>& ids) const;

  std::int32_t vocab_size() const;
  // Hex digest identifying the vocabulary and merges; recorded in token shards.
  const std::string& hash() const;

  // Implementation state is defined in gpt2_tokenizer.cpp.
  struct Impl;
  Gpt2Tokenizer(Gpt2Tokenizer&&) noexcept;
  Gpt2Tokenizer& operator=(Gpt2Tokenizer&&) noexcept;
  ~Gpt2Tokenizer();

 private:
  explicit Gpt2Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lnfree::data
