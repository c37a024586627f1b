#include "data/vocab_remap.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <numeric>
#include <utility>

#include "data/token_loader.h"
#include "util/error.h"
#include "util/files.h"
#include "util/json_file.h"

namespace lnfree::data {
namespace {
constexpr std::uint64_t kChunk = 1 << 20;
}

VocabRemap::VocabRemap(std::vector<std::int32_t> kept, std::string origin)
    : kept_(std::move(kept)), origin_(std::move(origin)) {
  table_.assign(kGpt2EndOfText + 1, unk_id());
  for (std::size_t i = 0; i < kept_.size(); ++i) {
    if (kept_[i] < 0 || kept_[i] >= kGpt2EndOfText)
      fail("{}: field 'kept[{}]': expected a GPT-2 id in [0, {}), got {}", origin_, i, kGpt2EndOfText,
           kept_[i]);
    if (table_[static_cast<std::size_t>(kept_[i])] != unk_id())
      fail("{}: field 'kept[{}]': id {} appears twice", origin_, i, kept_[i]);
    table_[static_cast<std::size_t>(kept_[i])] = static_cast<std::int32_t>(i);
  }
  table_[kGpt2EndOfText] = eot_id();
}

VocabRemap VocabRemap::from_counts(const TokenSplit& train, std::int64_t top) {
  if (top < 1 || top >= kGpt2EndOfText)
    fail("vocab: --top: expected 1 <= K < {}, got {}", kGpt2EndOfText, top);
  std::vector<std::uint64_t> counts(kGpt2EndOfText + 1, 0);
  std::vector<std::int64_t> buffer(kChunk);
  for (std::uint64_t begin = 0; begin < train.size(); begin += kChunk) {
    const std::uint64_t n = std::min<std::uint64_t>(kChunk, train.size() - begin);
    train.copy(begin, n, buffer.data());
    for (std::uint64_t i = 0; i < n; ++i) {
      const auto id = buffer[i];
      if (id < 0 || id > kGpt2EndOfText)
        fail("{}: token {} at position {} is not a GPT-2 id", train.description(), id, begin + i);
      ++counts[static_cast<std::size_t>(id)];
    }
  }
  std::vector<std::int32_t> ids(kGpt2EndOfText);  // every id but EOT
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(),
                   [&](std::int32_t a, std::int32_t b) { return counts[a] > counts[b]; });
  ids.resize(static_cast<std::size_t>(top));
  return VocabRemap(std::move(ids), train.description());
}

VocabRemap VocabRemap::load(const std::string& path) {
  const nlohmann::json json = read_json_file(path);
  // json.value() throws nlohmann's type_error (not an lnfree::Error) on a non-object or a field of
  // another type, so the shape is checked first.
  if (!json.is_object())
    fail("{}: expected a JSON object (an lnfree vocab file), got a JSON {}", path, json.type_name());
  const auto format = json.find("format");
  if (format == json.end() || *format != "lnfree-vocab")
    fail("{}: field 'format': expected \"lnfree-vocab\"", path);
  const auto kept_ids = json.find("kept");
  if (kept_ids == json.end() || !kept_ids->is_array())
    fail("{}: field 'kept': expected an array of ids", path);
  std::vector<std::int32_t> kept;
  for (std::size_t i = 0; i < kept_ids->size(); ++i) {
    const auto& id = (*kept_ids)[i];
    // Range-checked here: get<std::int32_t>() would wrap 4294967301 to 5.
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::int64_t>() >= kGpt2EndOfText ||
        (id.is_number_unsigned() && id.get<std::uint64_t>() >= kGpt2EndOfText))
      fail("{}: field 'kept[{}]': expected a GPT-2 id in [0, {}), got {}", path, i, kGpt2EndOfText,
           id.dump());
    kept.push_back(id.get<std::int32_t>());
  }
  VocabRemap remap(std::move(kept), path);
  if (json.contains("tokenizer_hash")) {
    if (!json["tokenizer_hash"].is_string()) fail("{}: field 'tokenizer_hash': expected a string", path);
    remap.tokenizer_hash_ = json["tokenizer_hash"].get<std::string>();
  }
  const auto vocab_size = json.find("vocab_size");
  if (vocab_size == json.end() || !vocab_size->is_number_integer() ||
      vocab_size->get<std::int64_t>() != remap.vocab_size())
    fail("{}: field 'vocab_size': expected {} (= len(kept) + 2), got {}", path, remap.vocab_size(),
         vocab_size == json.end() ? std::string("nothing") : vocab_size->dump());
  return remap;
}

std::shared_ptr<const VocabRemap> VocabRemap::load_optional(const std::string& path) {
  return path.empty() ? nullptr : std::make_shared<const VocabRemap>(load(path));
}

void VocabRemap::apply(std::int64_t* ids, std::uint64_t count) const {
  const auto size = static_cast<std::int64_t>(table_.size());
  for (std::uint64_t i = 0; i < count; ++i)
    ids[i] = (ids[i] >= 0 && ids[i] < size) ? table_[static_cast<std::size_t>(ids[i])] : unk_id();
}

double VocabRemap::unk_share(const TokenSplit& split) const {
  std::vector<std::int64_t> buffer(kChunk);
  std::uint64_t unk = 0;
  for (std::uint64_t begin = 0; begin < split.size(); begin += kChunk) {
    const std::uint64_t n = std::min<std::uint64_t>(kChunk, split.size() - begin);
    split.copy(begin, n, buffer.data());
    apply(buffer.data(), n);
    unk += static_cast<std::uint64_t>(
        std::count(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(n), unk_id()));
  }
  return split.size() == 0 ? 0.0 : static_cast<double>(unk) / static_cast<double>(split.size());
}

std::string VocabRemap::to_json(const std::string& source, const std::string& tokenizer_hash,
                                const std::map<std::string, double>& unk_shares) const {
  nlohmann::json json = {{"format", "lnfree-vocab"},
                         {"version", 1},
                         {"source", source},
                         {"tokenizer_hash", tokenizer_hash},
                         {"top", top()},
                         {"vocab_size", vocab_size()},
                         {"unk_id", unk_id()},
                         {"eot_id", eot_id()},
                         {"unk_share", unk_shares},
                         {"kept", kept_}};
  return json.dump(1) + "\n";
}

}  // namespace lnfree::data
