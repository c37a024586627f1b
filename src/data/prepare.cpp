#include "data/prepare.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <system_error>
#include <thread>
#include <utility>

#include "data/compressed_input.h"
#include "data/corpus_readers.h"
#include "data/deterministic_random.h"
#include "data/token_shard.h"
#include "util/build_info.h"
#include "util/error.h"
#include "util/files.h"

namespace lnfree::data {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A batch is tokenized in parallel, then appended in order: large enough to keep every thread
// busy, small enough that its text and tokens stay a few tens of MB.
constexpr std::size_t kBatchDocuments = 512;
constexpr std::size_t kBatchBytes = 32u << 20;

constexpr const char* kManifestName = "manifest.json";
constexpr const char* kStagingPrefix = ".prepare-staging-";

bool is_shard_file_name(const std::string& name) {
  for (const char* split : {"train-", "val-"}) {
    const std::string prefix(split);
    if (name.size() == prefix.size() + 9 && name.compare(0, prefix.size(), prefix) == 0 &&
        name.compare(name.size() - 4, 4, ".bin") == 0 &&
        std::all_of(name.begin() + prefix.size(), name.end() - 4,
                    [](char c) { return c >= '0' && c <= '9'; })) {
      return true;
    }
  }
  return false;
}

std::string shard_file_name(const std::string& split, std::size_t index) {
  return fmt::format("{}-{:05d}.bin", split, index);
}

void check_options(const PrepareOptions& options, const TextEncoder& encoder) {
  if (options.sources.empty()) fail("prepare: expected at least one --source");
  if (options.out_dir.empty()) fail("prepare: --out: expected a folder, got an empty path");
  if (!(options.val_fraction >= 0.0 && options.val_fraction <= 1.0)) {
    fail("prepare: --val-fraction: expected a number in [0, 1], got {}", options.val_fraction);
  }
  if (options.shard_tokens < 1)
    fail("prepare: --shard-tokens: expected at least 1, got {}", options.shard_tokens);
  if (options.threads < 0) fail("prepare: --threads: expected 0 (all) or more, got {}", options.threads);
  if (!encoder.encode_append) fail("prepare: no tokenizer given");
  if (encoder.end_of_text < 0 || encoder.end_of_text >= encoder.vocab_size) {
    fail("prepare: end-of-text id {} outside the vocabulary [0, {})", encoder.end_of_text,
         encoder.vocab_size);
  }
}

// Refuses a non-empty folder unless forced, then makes sure it exists; true if it was created.
bool prepare_output_folder(const PrepareOptions& options) {
  const fs::path out(options.out_dir);
  if (fs::exists(out) && !fs::is_directory(out))
    fail("{}: --out: expected a folder, got a file", options.out_dir);
  if (fs::exists(out) && !fs::is_empty(out) && !options.force) {
    if (fs::exists(out / kManifestName)) {
      fail("{}: already holds a prepared data set ({}); pass --force to replace it", options.out_dir,
           kManifestName);
    }
    fail(
        "{}: --out: expected a new or empty folder, but it holds '{}' (pass --force to write into it anyway)",
        options.out_dir, fs::directory_iterator(out)->path().filename().string());
  }
  return fs::create_directories(out);
}

// The hidden folder shards are written to before they are published. It is removed when the run
// ends, successfully or not, and so is the output folder if this run created it and left it empty.
class StagingFolder {
 public:
  StagingFolder(const fs::path& out, bool out_was_created)
      : out_(out),
        out_was_created_(out_was_created),
        path_(out / (kStagingPrefix + std::to_string(::getpid()))) {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
    fs::create_directory(path_);
  }
  ~StagingFolder() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
    if (out_was_created_ && fs::is_empty(out_, ignored)) fs::remove(out_, ignored);
  }
  StagingFolder(const StagingFolder&) = delete;
  StagingFolder& operator=(const StagingFolder&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path out_;
  bool out_was_created_;
  fs::path path_;
};

// One split's shards under construction.
class SplitWriter {
 public:
  SplitWriter(std::string name, const fs::path& staging, std::int64_t shard_tokens,
              const TextEncoder& encoder)
      : name_(std::move(name)),
        staging_(staging),
        shard_tokens_(static_cast<std::uint64_t>(shard_tokens)),
        builder_(encoder.vocab_size, encoder.hash) {}

  // Appends `ids`, cutting a shard every shard_tokens tokens.
  void append(const std::vector<std::int32_t>& ids) {
    std::size_t done = 0;
    while (done < ids.size()) {
      const std::size_t room = static_cast<std::size_t>(shard_tokens_ - builder_.size());
      const std::size_t n = std::min(room, ids.size() - done);
      builder_.append(ids.data() + done, n);
      done += n;
      if (builder_.size() == shard_tokens_) flush();
    }
    summary_.counts.tokens += static_cast<std::int64_t>(ids.size());
    summary_.counts.documents += 1;
  }

  // Writes the last, partial shard.
  SplitSummary finish() {
    if (builder_.size() > 0) flush();
    return summary_;
  }

 private:
  void flush() {
    const std::string file = shard_file_name(name_, summary_.shards.size());
    const std::int64_t tokens = static_cast<std::int64_t>(builder_.size());
    const std::int64_t bytes =
        static_cast<std::int64_t>(kShardHeaderBytes) + tokens * static_cast<std::int64_t>(builder_.dtype());
    builder_.write_and_clear((staging_ / file).string());
    summary_.shards.push_back({file, tokens, bytes});
  }

  std::string name_;
  fs::path staging_;
  std::uint64_t shard_tokens_;
  TokenShardBuilder builder_;
  SplitSummary summary_;
};

// Encodes every document of `batch` into `tokens` (same index), on `threads` threads.
void encode_batch(const std::vector<Document>& batch, const TextEncoder& encoder, int threads,
                  std::vector<std::vector<std::int32_t>>& tokens) {
  tokens.assign(batch.size(), {});
  std::atomic<std::size_t> next{0};
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  auto work = [&] {
    for (std::size_t i = next++; i < batch.size() && !failed; i = next++) {
      try {
        encoder.encode_append(batch[i].text, tokens[i]);
        tokens[i].push_back(encoder.end_of_text);
      } catch (...) {
        if (!failed.exchange(true)) error = std::current_exception();
      }
    }
  };
  const int n = std::max(1, std::min<int>(threads, static_cast<int>(batch.size())));
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(work);
  work();
  for (auto& thread : pool) thread.join();
  if (error) std::rethrow_exception(error);
}

json counts_json(const SplitCounts& counts) {
  return json{{"documents", counts.documents}, {"tokens", counts.tokens}};
}

json split_json(const SplitSummary& split) {
  json shards = json::array();
  for (const auto& shard : split.shards) {
    shards.push_back({{"file", shard.file}, {"tokens", shard.tokens}, {"bytes", shard.bytes}});
  }
  return json{{"documents", split.counts.documents}, {"tokens", split.counts.tokens}, {"shards", shards}};
}

json manifest_json(const PrepareOptions& options, const TextEncoder& encoder, const PrepareSummary& summary) {
  json sources = json::array();
  for (const auto& source : summary.sources) {
    sources.push_back({{"spec", source.spec},
                       {"kind", source.kind},
                       {"path", source.path},
                       {"train", counts_json(source.train)},
                       {"val", counts_json(source.val)},
                       {"empty_documents_skipped", source.empty_documents}});
  }
  return json{
      {"format", "lnfree-token-manifest"},
      {"format_version", kManifestFormatVersion},
      {"created_by", fmt::format("lnfree {} ({})", build_version(), build_git_commit())},
      {"tokenizer",
       {{"hash", encoder.hash},
        {"vocab_size", encoder.vocab_size},
        {"end_of_text", encoder.end_of_text},
        {"description", encoder.description}}},
      {"token_dtype", token_dtype_name(dtype_for_vocab(encoder.vocab_size))},
      {"eot_after_each_document", true},
      {"shard_tokens", options.shard_tokens},
      {"split",
       {{"rule", "val iff unit_interval(mix64(fnv1a64(document_id) ^ mix64(seed))) < val_fraction"},
        {"seed", options.seed},
        {"val_fraction", options.val_fraction}}},
      {"sources", sources},
      {"splits", {{"train", split_json(summary.train)}, {"val", split_json(summary.val)}}},
  };
}

// Replaces the old data set (if forced) by the staged one; manifest.json last.
void publish(const fs::path& out, const fs::path& staging, const PrepareSummary& summary,
             const json& manifest) {
  fs::remove(out / kManifestName);
  for (const auto& entry : fs::directory_iterator(out)) {
    const std::string name = entry.path().filename().string();
    if (is_shard_file_name(name)) fs::remove(entry.path());
    if (name.rfind(kStagingPrefix, 0) == 0 && entry.path() != staging) fs::remove_all(entry.path());
  }
  for (const SplitSummary* split : {&summary.train, &summary.val}) {
    for (const auto& shard : split->shards) fs::rename(staging / shard.file, out / shard.file);
  }
  write_file_atomically((out / kManifestName).string(), manifest.dump(2) + "\n");
}

std::string format_bytes(std::uint64_t bytes) {
  if (bytes >= 1'000'000'000) return fmt::format("{:.2f} GB", bytes / 1e9);
  if (bytes >= 1'000'000) return fmt::format("{:.1f} MB", bytes / 1e6);
  return fmt::format("{} bytes", bytes);
}

std::string format_duration(double seconds) {
  const auto s = static_cast<std::int64_t>(seconds + 0.5);
  if (s < 60) return fmt::format("{} s", s);
  if (s < 3600) return fmt::format("{} min {:02d} s", s / 60, s % 60);
  return fmt::format("{} h {:02d} min", s / 3600, s % 3600 / 60);
}

}  // namespace

std::string progress_message(std::uint64_t input_read, std::uint64_t input_total, std::int64_t documents,
                             double seconds) {
  const double fraction =
      input_total > 0 ? std::min(1.0, static_cast<double>(input_read) / input_total) : 0.0;
  std::string left = "time left unknown yet";
  if (fraction > 0) left = "about " + format_duration(seconds * (1 - fraction) / fraction) + " left";
  return fmt::format("prepare: {} of {} input read ({:.1f}%), {} documents, {} so far; {} at this rate",
                     format_bytes(input_read), format_bytes(input_total), 100 * fraction, documents,
                     format_duration(seconds), left);
}

bool is_validation_document(std::string_view document_id, std::uint64_t seed, double val_fraction) {
  return unit_interval(mix64(fnv1a64(document_id) ^ mix64(seed))) < val_fraction;
}

PrepareSummary prepare_dataset(const PrepareOptions& options, const TextEncoder& encoder) {
  const auto start = std::chrono::steady_clock::now();
  check_options(options, encoder);
  std::vector<SourceSpec> specs;
  std::map<std::pair<SourceKind, std::string>, std::string> seen;
  for (const auto& spec_string : options.sources) {
    SourceSpec spec = parse_source_spec(spec_string);
    // data.jsonl and data.jsonl.zst hold the same documents (same ids): the same source.
    std::string canonical = fs::weakly_canonical(spec.path).string();
    if (spec.kind == SourceKind::kJsonLines) canonical = std::string(without_compression_suffix(canonical));
    auto key = std::make_pair(spec.kind, canonical);
    if (auto it = seen.find(key); it != seen.end()) {
      fail("prepare: source '{}' names the same documents as '{}'; give each source once", spec_string,
           it->second);
    }
    seen.emplace(key, spec_string);
    specs.push_back(std::move(spec));
  }
  const bool out_was_created = prepare_output_folder(options);
  const int threads =
      options.threads > 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());

  const fs::path out(options.out_dir);
  StagingFolder staging(out, out_was_created);
  SplitWriter train("train", staging.path(), options.shard_tokens, encoder);
  SplitWriter val("val", staging.path(), options.shard_tokens, encoder);
  PrepareSummary summary;

  // Every source is opened (its files listed and sized) before any work, so a bad later source fails
  // at once and progress knows the total input.
  std::vector<std::unique_ptr<DocumentReader>> readers;
  std::uint64_t input_total = 0;
  for (const auto& spec : specs) {
    readers.push_back(open_source(spec));
    input_total += readers.back()->progress().bytes_total;
  }
  std::int64_t documents_done = 0;
  auto last_report = start;
  const auto report_progress = [&] {
    const auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - last_report).count() < options.progress_seconds) return;
    last_report = now;
    std::uint64_t input_read = 0;
    for (const auto& reader : readers) input_read += reader->progress().bytes_read;
    spdlog::info("{}", progress_message(input_read, input_total, documents_done,
                                        std::chrono::duration<double>(now - start).count()));
  };

  std::vector<Document> batch;
  std::vector<std::vector<std::int32_t>> tokens;
  for (std::size_t s = 0; s < specs.size(); ++s) {
    const SourceSpec& spec = specs[s];
    SourceSummary source{spec.spec, source_kind_name(spec.kind), spec.path, {}, {}, 0};
    auto flush_batch = [&] {
      encode_batch(batch, encoder, threads, tokens);
      for (std::size_t i = 0; i < batch.size(); ++i) {
        const bool is_val = is_validation_document(batch[i].id, options.seed, options.val_fraction);
        (is_val ? val : train).append(tokens[i]);
        SplitCounts& counts = is_val ? source.val : source.train;
        counts.documents += 1;
        counts.tokens += static_cast<std::int64_t>(tokens[i].size());
      }
      documents_done += static_cast<std::int64_t>(batch.size());
      batch.clear();
      report_progress();
    };
    DocumentReader& reader = *readers[s];
    Document doc;
    std::size_t batch_bytes = 0;
    while (reader.next(doc)) {
      if (doc.text.empty()) {
        ++source.empty_documents;
        continue;
      }
      batch_bytes += doc.text.size();
      batch.push_back(std::move(doc));
      if (batch.size() >= kBatchDocuments || batch_bytes >= kBatchBytes) {
        flush_batch();
        batch_bytes = 0;
      }
    }
    flush_batch();
    spdlog::info("prepare: {}: {} documents, {} tokens (train {} / val {} documents)", spec.spec,
                 source.train.documents + source.val.documents, source.train.tokens + source.val.tokens,
                 source.train.documents, source.val.documents);
    summary.sources.push_back(std::move(source));
  }
  summary.train = train.finish();
  summary.val = val.finish();
  // An empty data set is never what was meant (a wrong path, a filter that matched nothing), and
  // training on it would only fail later: refuse before anything is published.
  if (summary.train.counts.documents + summary.val.counts.documents == 0) {
    std::string specs;
    for (const auto& source : summary.sources) specs += (specs.empty() ? "" : ", ") + source.spec;
    fail("prepare: the sources hold no document with text ({}): nothing to tokenize, nothing written to {}",
         specs, out.string());
  }
  if (options.val_fraction > 0 && summary.val.counts.documents == 0) {
    spdlog::warn("prepare: no document landed in val (val fraction {}, {} documents)", options.val_fraction,
                 summary.train.counts.documents);
  }
  publish(out, staging.path(), summary, manifest_json(options, encoder, summary));
  summary.manifest_path = (out / kManifestName).string();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace lnfree::data
