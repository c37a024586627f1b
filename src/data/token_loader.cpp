#include "data/token_loader.h"

#include "data/gpt2_tokenizer.h"
#include "util/paths.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <utility>

#include "data/deterministic_random.h"
#include "util/error.h"
#include "util/files.h"

namespace lnfree::data {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const json& require(const json& object, const char* key, const std::string& where, const std::string& path) {
  auto it = object.find(key);
  if (it == object.end()) fail("{}: field '{}{}': missing", path, where, key);
  return *it;
}

std::int64_t require_count(const json& object, const char* key, const std::string& where,
                           const std::string& path) {
  const json& value = require(object, key, where, path);
  if (!value.is_number_integer() || value.get<std::int64_t>() < 0) {
    fail("{}: field '{}{}': expected a non-negative integer, got {}", path, where, key, value.dump());
  }
  return value.get<std::int64_t>();
}

std::int64_t windows_or_fail(const TokenSplit& split, std::int64_t sequence_length) {
  const std::int64_t windows = split.window_count(sequence_length);
  if (windows == 0) {
    fail("{}: {} tokens hold no window of sequence_length + 1 = {} tokens", split.description(), split.size(),
         sequence_length + 1);
  }
  return windows;
}

}  // namespace

// ---- TokenSplit -------------------------------------------------------------------------------

TokenSplit::TokenSplit(std::vector<TokenShard> shards, std::string description,
                       std::shared_ptr<const VocabRemap> remap)
    : remap_(std::move(remap)), shards_(std::move(shards)), description_(std::move(description)) {
  for (const auto& shard : shards_) {
    starts_.push_back(total_tokens_);
    total_tokens_ += shard.size();
  }
  if (!shards_.empty()) {
    tokenizer_hash_ = shards_.front().header().tokenizer_hash;
    vocab_size_ = shards_.front().header().vocab_size;
  }
  for (const auto& shard : shards_) {
    if (shard.header().tokenizer_hash != tokenizer_hash_) {
      fail(
          "{}: field 'tokenizer_hash': expected '{}' (as in {}), got '{}'; shards of one split must share a "
          "tokenizer",
          shard.path(), tokenizer_hash_, shards_.front().path(), shard.header().tokenizer_hash);
    }
    if (shard.header().vocab_size != vocab_size_) {
      fail("{}: field 'vocab_size': expected {} (as in {}), got {}", shard.path(), vocab_size_,
           shards_.front().path(), shard.header().vocab_size);
    }
  }
}

std::string expected_tokenizer_hash(const VocabRemap* remap) {
  if (remap && !remap->tokenizer_hash().empty()) return remap->tokenizer_hash();
  const std::string dir = default_bpe_dir();
  if (!fs::exists(fs::path(dir) / "encoder.json") || !fs::exists(fs::path(dir) / "vocab.bpe")) return "";
  return tokenizer_hash_of_directory(dir);
}

std::shared_ptr<const TokenSplit> TokenSplit::from_manifest(const std::string& manifest,
                                                            const std::string& split,
                                                            const std::string& expected_tokenizer_hash,
                                                            std::shared_ptr<const VocabRemap> remap) {
  const fs::path manifest_path =
      fs::is_directory(manifest) ? fs::path(manifest) / "manifest.json" : fs::path(manifest);
  const std::string path = manifest_path.string();
  json root;
  try {
    root = json::parse(read_file(path));
  } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e999
    fail("{}: not valid JSON ({}); expected an lnfree prepare manifest", path, e.what());
  }
  if (!root.is_object()) fail("{}: expected a JSON object (an lnfree prepare manifest)", path);
  const json& version = require(root, "format_version", "", path);
  if (version != json(1)) fail("{}: field 'format_version': expected 1, got {}", path, version.dump());
  const json& tokenizer = require(root, "tokenizer", "", path);
  const json& hash = require(tokenizer, "hash", "tokenizer.", path);
  if (!hash.is_string()) fail("{}: field 'tokenizer.hash': expected a string, got {}", path, hash.dump());
  const std::string manifest_hash = hash.get<std::string>();
  if (!expected_tokenizer_hash.empty() && manifest_hash != expected_tokenizer_hash) {
    fail("{}: field 'tokenizer.hash': expected '{}' (the hash of the tokenizer lnfree uses, or of the vocabulary "
         "remap's data), got '{}': these tokens come from another tokenizer; re-run lnfree prepare with GPT-2's",
         path, expected_tokenizer_hash, manifest_hash);
  }
  const json& splits = require(root, "splits", "", path);
  if (!splits.is_object() || !splits.contains(split)) {
    std::string names;
    if (splits.is_object()) {
      for (const auto& item : splits.items()) names += (names.empty() ? "" : ", ") + item.key();
    }
    fail("{}: field 'splits.{}': missing; the manifest has: {}", path, split, names.empty() ? "none" : names);
  }
  const std::string where = "splits." + split + ".";
  const json& shard_list = require(splits[split], "shards", where, path);
  if (!shard_list.is_array()) fail("{}: field '{}shards': expected an array", path, where);
  std::vector<TokenShard> shards;
  for (std::size_t i = 0; i < shard_list.size(); ++i) {
    const std::string entry = fmt::format("{}shards[{}].", where, i);
    const json& file = require(shard_list[i], "file", entry, path);
    if (!file.is_string()) fail("{}: field '{}file': expected a string, got {}", path, entry, file.dump());
    const std::int64_t tokens = require_count(shard_list[i], "tokens", entry, path);
    const std::string shard_path = (manifest_path.parent_path() / file.get<std::string>()).string();
    TokenShard shard = TokenShard::open(shard_path, manifest_hash, "the manifest's tokenizer.hash");
    if (shard.size() != static_cast<std::uint64_t>(tokens)) {
      fail("{}: field 'token_count': expected {} tokens (as {} field '{}tokens' says), got {}", shard_path,
           tokens, path, entry, shard.size());
    }
    shards.push_back(std::move(shard));
  }
  return std::shared_ptr<const TokenSplit>(
      new TokenSplit(std::move(shards), fmt::format("{} split '{}'", path, split), std::move(remap)));
}

std::shared_ptr<const TokenSplit> TokenSplit::from_shards(const std::vector<std::string>& paths,
                                                          const std::string& expected_tokenizer_hash,
                                                          std::shared_ptr<const VocabRemap> remap) {
  if (paths.empty()) fail("token shards: expected at least one shard file");
  std::vector<TokenShard> shards;
  for (const auto& path : paths) shards.push_back(TokenShard::open(path, expected_tokenizer_hash));
  const std::string description =
      paths.size() == 1 ? paths.front()
                        : fmt::format("{} (and {} more shards)", paths.front(), paths.size() - 1);
  return std::shared_ptr<const TokenSplit>(new TokenSplit(std::move(shards), description, std::move(remap)));
}

void TokenSplit::copy(std::uint64_t begin, std::uint64_t count, std::int64_t* out) const {
  if (begin > total_tokens_ || count > total_tokens_ - begin) {
    fail("{}: token range [{}, {}) outside the split's {} tokens", description_, begin, begin + count,
         total_tokens_);
  }
  // The last shard starting at or before `begin`; empty shards are skipped by the loop.
  std::size_t shard =
      static_cast<std::size_t>(std::upper_bound(starts_.begin(), starts_.end(), begin) - starts_.begin()) - 1;
  while (count > 0) {
    const std::uint64_t offset = begin - starts_[shard];
    const std::uint64_t n = std::min<std::uint64_t>(count, shards_[shard].size() - offset);
    shards_[shard].copy(offset, n, out);
    if (remap_) remap_->apply(out, n);
    out += n;
    begin += n;
    count -= n;
    ++shard;
  }
}

std::int64_t TokenSplit::window_count(std::int64_t sequence_length) const {
  if (sequence_length < 1) fail("sequence length: expected at least 1, got {}", sequence_length);
  if (total_tokens_ < static_cast<std::uint64_t>(sequence_length) + 1) return 0;
  return static_cast<std::int64_t>((total_tokens_ - 1) / static_cast<std::uint64_t>(sequence_length));
}

void TokenSplit::copy_window(std::int64_t index, std::int64_t sequence_length, std::int64_t* out) const {
  copy(static_cast<std::uint64_t>(index) * static_cast<std::uint64_t>(sequence_length),
       static_cast<std::uint64_t>(sequence_length) + 1, out);
}

// ---- LoaderPosition ---------------------------------------------------------------------------

json LoaderPosition::to_json() const {
  return json{{"seed", seed},
              {"sequence_length", sequence_length},
              {"windows", windows},
              {"sequences_per_step", sequences_per_step},
              {"micro_batch", micro_batch},
              {"rank", rank},
              {"world", world},
              {"step", step},
              {"micro", micro},
              {"epoch", epoch}};
}

LoaderPosition LoaderPosition::from_json(const json& j, const std::string& context) {
  if (!j.is_object()) fail("{}: loader position: expected a JSON object, got {}", context, j.dump());
  LoaderPosition p;
  const json& seed = require(j, "seed", "loader.", context);
  if (!seed.is_number_unsigned() && !(seed.is_number_integer() && seed.get<std::int64_t>() >= 0)) {
    fail("{}: field 'loader.seed': expected a non-negative integer, got {}", context, seed.dump());
  }
  p.seed = seed.get<std::uint64_t>();
  p.sequence_length = require_count(j, "sequence_length", "loader.", context);
  p.windows = require_count(j, "windows", "loader.", context);
  p.sequences_per_step = require_count(j, "sequences_per_step", "loader.", context);
  p.micro_batch = require_count(j, "micro_batch", "loader.", context);
  p.rank = static_cast<int>(require_count(j, "rank", "loader.", context));
  p.world = static_cast<int>(require_count(j, "world", "loader.", context));
  p.step = require_count(j, "step", "loader.", context);
  p.micro = require_count(j, "micro", "loader.", context);
  p.epoch = require_count(j, "epoch", "loader.", context);
  return p;
}

// ---- TokenLoader ------------------------------------------------------------------------------

TokenLoader::TokenLoader(std::shared_ptr<const TokenSplit> split, const LoaderConfig& config)
    : split_(std::move(split)), config_(config) {
  const std::int64_t S = config.sequences_per_step, B = config.micro_batch, W = config.world;
  if (config.sequence_length < 1)
    fail("loader: sequence_length: expected at least 1, got {}", config.sequence_length);
  if (S < 1) fail("loader: sequences_per_step: expected at least 1, got {}", S);
  if (B < 1) fail("loader: micro_batch: expected at least 1, got {}", B);
  if (W < 1) fail("loader: world: expected at least 1, got {}", W);
  if (config.rank < 0 || config.rank >= W) fail("loader: rank: expected 0 .. {}, got {}", W - 1, config.rank);
  if (S % (B * W) != 0) {
    fail("loader: sequences_per_step {} must be divisible by micro_batch x world = {} x {} = {}", S, B, W,
         B * W);
  }
  accumulation_ = S / (B * W);
  windows_ = windows_or_fail(*split_, config.sequence_length);
}

const std::vector<std::uint64_t>& TokenLoader::permutation(std::int64_t epoch) const {
  auto it = permutations_.find(epoch);
  if (it != permutations_.end()) return it->second;
  while (permutations_.size() >= 2) {
    // Keep the epoch closest to the requested one: sequential reading only needs neighbours.
    auto far = permutations_.begin();
    if (std::abs(permutations_.rbegin()->first - epoch) > std::abs(far->first - epoch)) {
      far = std::prev(permutations_.end());
    }
    permutations_.erase(far);
  }
  const std::uint64_t seed = mix64(config_.seed) ^ mix64(static_cast<std::uint64_t>(epoch) + 1);
  return permutations_.emplace(epoch, seeded_permutation(static_cast<std::uint64_t>(windows_), seed))
      .first->second;
}

std::int64_t TokenLoader::window_of(std::int64_t global_sequence) const {
  if (global_sequence < 0) fail("loader: global sequence index: expected >= 0, got {}", global_sequence);
  return static_cast<std::int64_t>(permutation(global_sequence / windows_)[global_sequence % windows_]);
}

std::int64_t TokenLoader::epoch() const {
  const std::int64_t S = config_.sequences_per_step;
  const std::int64_t next = step_ * S + config_.rank * (S / config_.world) + micro_ * config_.micro_batch;
  return next / windows_;
}

void TokenLoader::next_micro_batch(std::int64_t* out, std::int64_t* window_ids) {
  const std::int64_t S = config_.sequences_per_step, B = config_.micro_batch, T = config_.sequence_length;
  const std::int64_t first = step_ * S + config_.rank * (S / config_.world) + micro_ * B;
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int64_t window = window_of(first + b);
    split_->copy_window(window, T, out + b * (T + 1));
    if (window_ids != nullptr) window_ids[b] = window;
  }
  if (++micro_ == accumulation_) {
    micro_ = 0;
    ++step_;
  }
}

LoaderPosition TokenLoader::position() const {
  LoaderPosition p;
  p.seed = config_.seed;
  p.sequence_length = config_.sequence_length;
  p.windows = windows_;
  p.sequences_per_step = config_.sequences_per_step;
  p.micro_batch = config_.micro_batch;
  p.rank = config_.rank;
  p.world = config_.world;
  p.step = step_;
  p.micro = micro_;
  p.epoch = epoch();
  return p;
}

void TokenLoader::restore(const LoaderPosition& p) {
  auto mismatch = [](const char* field, auto expected, auto got) {
    fail("loader position: field '{}': expected {} (this run), got {}; the saved run read a different order",
         field, expected, got);
  };
  if (p.seed != config_.seed) mismatch("seed", config_.seed, p.seed);
  if (p.sequence_length != config_.sequence_length)
    mismatch("sequence_length", config_.sequence_length, p.sequence_length);
  if (p.windows != windows_) mismatch("windows", windows_, p.windows);
  if (p.sequences_per_step != config_.sequences_per_step) {
    mismatch("sequences_per_step", config_.sequences_per_step, p.sequences_per_step);
  }
  if (p.step < 0) fail("loader position: field 'step': expected >= 0, got {}", p.step);
  if (p.micro != 0) {
    // Mid-step, the remaining micro-batches are only defined for the same rank layout.
    if (p.world != config_.world) mismatch("world", config_.world, p.world);
    if (p.rank != config_.rank) mismatch("rank", config_.rank, p.rank);
    if (p.micro_batch != config_.micro_batch) mismatch("micro_batch", config_.micro_batch, p.micro_batch);
    if (p.micro < 0 || p.micro >= accumulation_) {
      fail("loader position: field 'micro': expected 0 .. {}, got {}", accumulation_ - 1, p.micro);
    }
  }
  step_ = p.step;
  micro_ = p.micro;
}

// ---- EvalWindows ------------------------------------------------------------------------------

EvalWindows::EvalWindows(std::shared_ptr<const TokenSplit> split, std::int64_t sequence_length,
                         std::int64_t max_windows, int rank, int world)
    : split_(std::move(split)), sequence_length_(sequence_length) {
  if (world < 1) fail("evaluation: world: expected at least 1, got {}", world);
  if (rank < 0 || rank >= world) fail("evaluation: rank: expected 0 .. {}, got {}", world - 1, rank);
  if (max_windows < 0) fail("evaluation: window limit: expected 0 (all) or more, got {}", max_windows);
  const std::int64_t available = windows_or_fail(*split_, sequence_length);
  total_ = max_windows > 0 ? std::min(max_windows, available) : available;
  begin_ = total_ * rank / world;
  end_ = total_ * (rank + 1) / world;
  next_ = begin_;
}

std::int64_t EvalWindows::next_batch(std::int64_t max_batch, std::int64_t* out) {
  if (max_batch < 1) fail("evaluation: batch size: expected at least 1, got {}", max_batch);
  const std::int64_t n = std::min(max_batch, end_ - next_);
  for (std::int64_t i = 0; i < n; ++i)
    split_->copy_window(next_ + i, sequence_length_, out + i * (sequence_length_ + 1));
  next_ += n;
  return n;
}

}  // namespace lnfree::data
