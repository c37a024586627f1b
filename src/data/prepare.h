// `lnfree prepare`: document sources -> tokens -> train/val token shards + manifest.json.
//
// Every document is encoded and followed by one end-of-text token (GPT-2: 50256; never a BOS), as
// in the reference's prepare_dataset.py. Documents with empty text are skipped (counted in the
// manifest), since they would only add a lone EOT.
//
// Split rule: a document goes to val iff
//     unit_interval(mix64(fnv1a64(document_id) ^ mix64(seed))) < val_fraction
// (deterministic_random.h), so the decision depends only on the seed and the document's id (see
// corpus_readers.h: "KIND:RELATIVE_PATH"), never on the order or number of sources.
//
// Each split's tokens, in source order then document order, are cut into shards of exactly
// `shard_tokens` tokens (the last one shorter) named train-00000.bin, val-00000.bin, ...; a
// document may continue in the next shard (the loader concatenates them). Tokenization runs on a
// thread pool over batches of documents; results are appended in document order, so the output is
// byte-identical whatever the thread count.
//
// Atomicity: shards are first written into a hidden staging folder inside the output folder.
// Only when everything is written are old shards and manifest removed, the new shards renamed into
// place and manifest.json written (atomically) last. A folder with a manifest.json is therefore
// always complete; an interrupted run leaves only the hidden staging folder.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace lnfree::data {

inline constexpr int kManifestFormatVersion = 1;
inline constexpr std::uint64_t kDefaultSplitSeed = 2357;  // nanoGPT's / the reference's split seed

// The tokenizer as prepare sees it. `encode_append` is called from several threads at once.
struct TextEncoder {
  std::function<void(std::string_view text, std::vector<std::int32_t>& out)> encode_append;
  std::int64_t vocab_size = 0;
  std::string hash;              // recorded in every shard and in the manifest
  std::int32_t end_of_text = 0;  // appended after each document
  std::string description;       // recorded in the manifest, e.g. where the BPE files came from
};

struct PrepareOptions {
  std::vector<std::string> sources;  // source specs (corpus_readers.h)
  std::string out_dir;
  // Suits small corpora (the bundled 600 documents give ~40 val documents). OpenWebText for the
  // paper configs passes 0.0005, the reference's 0.05% (docs/data.md); a per-corpus choice, so
  // not the default.
  double val_fraction = 0.05;
  std::int64_t shard_tokens = 100'000'000;
  std::uint64_t seed = kDefaultSplitSeed;
  bool force = false;  // replace an existing data set in out_dir
  int threads = 0;     // tokenizer threads; 0 = one per hardware thread
  // A progress line (progress_message) at most this often, and not before this much time has
  // passed, so that small corpora stay quiet.
  double progress_seconds = 10;
};

struct SplitCounts {
  std::int64_t documents = 0;
  std::int64_t tokens = 0;  // EOTs included
};

struct SourceSummary {
  std::string spec;
  std::string kind;
  std::string path;
  SplitCounts train;
  SplitCounts val;
  std::int64_t empty_documents = 0;
};

struct ShardSummary {
  std::string file;  // relative to the output folder
  std::int64_t tokens = 0;
  std::int64_t bytes = 0;
};

struct SplitSummary {
  SplitCounts counts;
  std::vector<ShardSummary> shards;
};

struct PrepareSummary {
  std::vector<SourceSummary> sources;
  SplitSummary train;
  SplitSummary val;
  std::string manifest_path;
  double seconds = 0;
};

// The progress line of a long run: input bytes read of the total, both as stored on disk (so
// compressed bytes for compressed files, which is what the file sizes show), the documents done,
// the time so far and the time left if the rest goes at the rate so far. The rate is per input
// byte: sources that differ in work per byte (plain next to compressed text) bias the estimate
// while the mix changes, but a single large corpus gives an honest one.
std::string progress_message(std::uint64_t input_read, std::uint64_t input_total, std::int64_t documents,
                             double seconds);

// True when the document with this id belongs to the val split (rule above).
bool is_validation_document(std::string_view document_id, std::uint64_t seed, double val_fraction);

// Runs the whole preparation. Throws lnfree::Error for bad options, unreadable sources, or an
// output folder that is not empty (unless options.force; then only manifest.json, train-*.bin,
// val-*.bin and stale staging folders are replaced, other files are left alone).
PrepareSummary prepare_dataset(const PrepareOptions& options, const TextEncoder& encoder);

}  // namespace lnfree::data
