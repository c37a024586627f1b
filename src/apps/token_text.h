// Token ids <-> text for the commands that show or take text (eval's outlier report, generate),
// through GPT-2's tokenizer and, for a model trained on a remapped vocabulary, the remap: kept ids
// map back to their GPT-2 ids, UNK shows as "<unk>", EOT as "<|endoftext|>".
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/gpt2_tokenizer.h"
#include "data/vocab_remap.h"

namespace lnfree::apps {

class TokenText {
 public:
  TokenText(const std::string& bpe_dir, std::shared_ptr<const data::VocabRemap> remap)
      : tokenizer_(data::Gpt2Tokenizer::from_directory(bpe_dir)), remap_(std::move(remap)) {}

  std::string decode(const std::vector<std::int32_t>& ids) const {
    if (!remap_) return tokenizer_.decode(ids);
    std::string out;
    std::vector<std::int32_t> run;
    auto flush = [&] {
      out += tokenizer_.decode(run);
      run.clear();
    };
    for (auto id : ids) {
      if (id < remap_->top()) {
        run.push_back(remap_->kept()[static_cast<std::size_t>(id)]);
      } else {
        flush();
        out += id == remap_->eot_id() ? "<|endoftext|>" : "<unk>";
      }
    }
    flush();
    return out;
  }

  std::vector<std::int64_t> encode(const std::string& text) const {
    auto ids = tokenizer_.encode(text);
    std::vector<std::int64_t> out(ids.begin(), ids.end());
    if (remap_) remap_->apply(out.data(), out.size());
    return out;
  }

 private:
  data::Gpt2Tokenizer tokenizer_;
  std::shared_ptr<const data::VocabRemap> remap_;
};

// Text with control characters and backslashes escaped, for one-line reports.
inline std::string printable(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\\')
      out += "\\\\";
    else if (c < 0x20 || c == 0x7f)
      out += fmt::format("\\x{:02x}", c);
    else
      out.push_back(static_cast<char>(c));
  }
  return out;
}

}  // namespace lnfree::apps
