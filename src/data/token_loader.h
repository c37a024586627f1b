// Training and evaluation batches from token shards.
//
// Windows. A split is the virtual concatenation of its shards, in manifest order (a document may
// continue from one shard into the next, so windows cross shard boundaries freely). For sequence
// length T, window i is tokens [i*T, i*T + T + 1): T inputs plus the T targets shifted by one;
// neighbouring windows share one token. A split of N tokens has floor((N - 1) / T) full windows;
// the remainder is never used.
//
// Training order. Epoch e visits every window exactly once, in the order
//     seeded_permutation(windows, mix64(seed) ^ mix64(e + 1))        (deterministic_random.h)
// and the epochs are concatenated into one endless stream of "global sequences": global sequence
// g is window perm_{g / windows}[g % windows]. The order therefore depends only on the seed, the
// epoch and the window count, identically on every platform.
//
// Ranks. With S = sequences_per_step (global, one optimizer step), B = micro_batch (per rank) and
// W ranks, S must be divisible by B*W; accumulation = S / (B*W). Optimizer step s consists of
// global sequences [s*S, (s+1)*S). Rank r takes the contiguous slice
//     [s*S + r*S/W, s*S + (r+1)*S/W)
// and returns it as `accumulation` micro-batches of B sequences, in order. The set of sequences
// of step s is thus the same for every W (rank-count invariance), and the ranks of one step are
// disjoint. A step may straddle two epochs.
//
// Resuming. position() captures (step, micro-batch index) plus everything the order depends on;
// restore() continues with exactly the sequences the saved run would have seen next. At a step
// boundary (micro == 0) a position may be restored under a different world size, rank or micro
// batch, since steps are defined globally; mid-step it must match exactly.
//
// Evaluation. EvalWindows walks windows 0, 1, 2, ... in order (optionally only the first K),
// rank r taking the contiguous block [floor(r*K/W), floor((r+1)*K/W)).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/token_shard.h"
#include "data/vocab_remap.h"

namespace lnfree::data {

// A split's shards, memory-mapped and validated, addressed as one token array.
class TokenSplit {
 public:
  // `manifest` is a manifest.json or the folder holding it; `split` is "train" or "val". Checks that
  // each shard's token count matches the manifest and that every shard's tokenizer hash equals the
  // manifest's (and `expected_tokenizer_hash`, when given).
  // With `remap`, every token read is mapped to the smaller vocabulary (vocab_remap.h).
  static std::shared_ptr<const TokenSplit> from_manifest(const std::string& manifest,
                                                         const std::string& split,
                                                         const std::string& expected_tokenizer_hash = "",
                                                         std::shared_ptr<const VocabRemap> remap = nullptr);
  // Shards in the given order; all must share one tokenizer hash (and `expected_tokenizer_hash`).
  static std::shared_ptr<const TokenSplit> from_shards(const std::vector<std::string>& paths,
                                                       const std::string& expected_tokenizer_hash = "",
                                                       std::shared_ptr<const VocabRemap> remap = nullptr);

  std::uint64_t size() const { return total_tokens_; }
  const std::string& tokenizer_hash() const { return tokenizer_hash_; }
  // The vocabulary the tokens are in: the remapped one when a remap is attached.
  std::uint32_t vocab_size() const {
    return remap_ ? static_cast<std::uint32_t>(remap_->vocab_size()) : vocab_size_;
  }
  const VocabRemap* remap() const { return remap_.get(); }
  const std::string& description() const { return description_; }

  // Copies tokens [begin, begin + count) of the concatenation, widened to int64.
  void copy(std::uint64_t begin, std::uint64_t count, std::int64_t* out) const;

  // floor((size - 1) / T), or 0 when the split is shorter than T + 1 tokens.
  std::int64_t window_count(std::int64_t sequence_length) const;
  // Window `index` (T + 1 tokens) into out.
  void copy_window(std::int64_t index, std::int64_t sequence_length, std::int64_t* out) const;

 private:
  TokenSplit(std::vector<TokenShard> shards, std::string description,
             std::shared_ptr<const VocabRemap> remap = nullptr);
  std::shared_ptr<const VocabRemap> remap_;
  std::vector<TokenShard> shards_;
  std::vector<std::uint64_t> starts_;  // starts_[i]: first global token of shard i
  std::uint64_t total_tokens_ = 0;
  std::string tokenizer_hash_;
  std::uint32_t vocab_size_ = 0;
  std::string description_;  // names the manifest split or first shard, for error messages
};

struct LoaderConfig {
  std::int64_t sequence_length = 0;     // T
  std::int64_t sequences_per_step = 0;  // S, global
  std::int64_t micro_batch = 0;         // B, per rank
  int rank = 0;
  int world = 1;
  std::uint64_t seed = 0;
};

// Where a TokenLoader stands, plus what its order depends on (checked on restore).
struct LoaderPosition {
  std::uint64_t seed = 0;
  std::int64_t sequence_length = 0;
  std::int64_t windows = 0;  // windows per epoch: guards against resuming on other data
  std::int64_t sequences_per_step = 0;
  std::int64_t micro_batch = 0;
  int rank = 0;
  int world = 1;
  std::int64_t step = 0;   // next optimizer step
  std::int64_t micro = 0;  // next micro-batch within it
  std::int64_t epoch = 0;  // epoch of the next sequence (informational)

  nlohmann::json to_json() const;
  // `context` names where the JSON came from (a file) for error messages.
  static LoaderPosition from_json(const nlohmann::json& j, const std::string& context);
};

class TokenLoader {
 public:
  TokenLoader(std::shared_ptr<const TokenSplit> split, const LoaderConfig& config);

  std::int64_t accumulation_steps() const { return accumulation_; }
  std::int64_t windows_per_epoch() const { return windows_; }
  std::int64_t step() const { return step_; }
  std::int64_t micro() const { return micro_; }
  std::int64_t epoch() const;  // epoch of the next sequence this rank reads

  // Fills out[B * (T + 1)] with the next micro-batch (row-major, one window per row) and, when
  // given, window_ids[B] with the window indices. After the last micro-batch of a step the
  // position moves to the next step.
  void next_micro_batch(std::int64_t* out, std::int64_t* window_ids = nullptr);

  // The window that global sequence g of the endless training stream reads.
  std::int64_t window_of(std::int64_t global_sequence) const;

  LoaderPosition position() const;
  void restore(const LoaderPosition& position);

 private:
  const std::vector<std::uint64_t>& permutation(std::int64_t epoch) const;

  std::shared_ptr<const TokenSplit> split_;
  LoaderConfig config_;
  std::int64_t windows_ = 0;
  std::int64_t accumulation_ = 0;
  std::int64_t step_ = 0;
  std::int64_t micro_ = 0;
  // The permutations of the (at most two) epochs in use; a step can straddle an epoch boundary.
  mutable std::map<std::int64_t, std::vector<std::uint64_t>> permutations_;
};

// The tokenizer hash that every manifest read for training or evaluation must carry: the remap's
// (the data it was counted on) when a remap is in use, else that of lnfree's GPT-2 tokenizer in
// the default BPE folder (util/paths.h); "" (no check possible) when neither is known.
std::string expected_tokenizer_hash(const VocabRemap* remap);

// All full windows of a split in order, for evaluation; see the top of this file.
class EvalWindows {
 public:
  // max_windows = 0 means all windows.
  EvalWindows(std::shared_ptr<const TokenSplit> split, std::int64_t sequence_length, std::int64_t max_windows,
              int rank, int world);

  std::int64_t total_windows() const { return total_; }  // over all ranks
  std::int64_t begin() const { return begin_; }          // this rank's windows: [begin, end)
  std::int64_t end() const { return end_; }

  // Fills up to max_batch windows (rows of T + 1 tokens) into out; returns how many, 0 at the end.
  std::int64_t next_batch(std::int64_t max_batch, std::int64_t* out);
  void reset() { next_ = begin_; }

 private:
  std::shared_ptr<const TokenSplit> split_;
  std::int64_t sequence_length_;
  std::int64_t total_ = 0;
  std::int64_t begin_ = 0;
  std::int64_t end_ = 0;
  std::int64_t next_ = 0;
};

}  // namespace lnfree::data
