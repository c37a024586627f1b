// lnfree prepare: tokenize text corpora into train/val token shards plus a manifest, the input of
// training and evaluation. The work is in data/prepare.cpp; this file is options and the report.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "apps/command_registry.h"
#include "data/gpt2_tokenizer.h"
#include "data/prepare.h"
#include "util/paths.h"

namespace lnfree::apps {
namespace {

struct PrepareArgs {
  data::PrepareOptions options;
  std::string bpe_dir = default_bpe_dir();
};

void print_row(const std::string& name, const char* split, const data::SplitCounts& counts) {
  fmt::print("  {:<56} {:<5} {:>10} {:>14}\n", name, split, counts.documents, counts.tokens);
}

void run_prepare(const PrepareArgs& args) {
  const auto start = std::chrono::steady_clock::now();
  const auto tokenizer = data::Gpt2Tokenizer::from_directory(args.bpe_dir);
  data::TextEncoder encoder;
  encoder.encode_append = [&tokenizer](std::string_view text, std::vector<std::int32_t>& out) {
    tokenizer.encode_append(text, out);
  };
  encoder.vocab_size = tokenizer.vocab_size();
  encoder.hash = tokenizer.hash();
  encoder.end_of_text = data::Gpt2Tokenizer::kEndOfText;
  encoder.description = "GPT-2 byte-level BPE from " + args.bpe_dir;

  const auto summary = data::prepare_dataset(args.options, encoder);
  const double total_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const int threads = args.options.threads > 0
                          ? args.options.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  fmt::print("prepared {} (tokenizer {}, {} tokenizer threads)\n", args.options.out_dir, encoder.hash,
             threads);
  fmt::print("  {:<56} {:<5} {:>10} {:>14}\n", "source", "split", "documents", "tokens");
  for (const auto& source : summary.sources) {
    print_row(source.spec, "train", source.train);
    print_row("", "val", source.val);
    if (source.empty_documents > 0)
      fmt::print("  {:<56} ({} empty documents skipped)\n", "", source.empty_documents);
  }
  print_row("all sources", "train", summary.train.counts);
  print_row("", "val", summary.val.counts);
  fmt::print("shards: {} train, {} val; manifest: {}\n", summary.train.shards.size(),
             summary.val.shards.size(), summary.manifest_path);
  fmt::print("time: {:.2f} s reading, tokenizing and writing; {:.2f} s in all (with loading the tokenizer)\n",
             summary.seconds, total_seconds);
}

RegisterCommand reg("prepare", [](CLI::App& root) {
  auto* cmd =
      root.add_subcommand("prepare", "Tokenize text corpora into train/val token shards and a manifest");
  auto args = std::make_shared<PrepareArgs>();
  auto& o = args->options;
  cmd->add_option(
         "--source", o.sources,
         "Documents to tokenize, repeatable: KIND:PATH with KIND one of text, jsonl, brown, nlp-corpus,\n"
         "or just PATH to detect the kind; JSON Lines may be compressed (*.jsonl.zst, *.jsonl.gz,\n"
         "*.jsonl.xz), read streamed")
      ->required();
  cmd->add_option("--out", o.out_dir, "Output folder (new or empty, or a previous output with --force)")
      ->required();
  cmd->add_option("--val-fraction", o.val_fraction,
                  "Expected fraction of documents that go to the val split (OpenWebText for the paper\n"
                  "configs: 0.0005, the reference's 0.05%)")
      ->capture_default_str();
  cmd->add_option("--shard-tokens", o.shard_tokens,
                  "Tokens per shard file (the last shard of a split is shorter)")
      ->capture_default_str();
  cmd->add_option("--bpe", args->bpe_dir, "Folder with GPT-2's encoder.json and vocab.bpe")
      ->capture_default_str();
  cmd->add_option("--seed", o.seed, "Seed of the train/val split")->capture_default_str();
  cmd->add_option("--threads", o.threads, "Tokenizer threads (0 = one per hardware thread)")
      ->capture_default_str();
  cmd->add_flag(
      "--force", o.force,
      "Replace the data set in --out (its manifest.json and train-/val-*.bin; other files are kept)");
  cmd->footer(
      "Sources (one document each, ids are KIND:RELATIVE_PATH):\n"
      "  text:FILE_OR_DIR   each file one document (folders recursively, hidden files skipped)\n"
      "  jsonl:FILE_OR_DIR  JSON Lines with a string field \"text\", one document per line (*.jsonl,\n"
      "                     or *.jsonl.zst/.gz/.xz, decompressed on the fly; ids use the name without\n"
      "                     the suffix, so data.jsonl.zst gives the documents and split of data.jsonl)\n"
      "  brown:DIR          Brown corpus word/TAG files ca01..cr09: tags stripped, words joined by\n"
      "                     spaces, one paragraph per line\n"
      "  nlp-corpus:DIR     nlp-corpus builds/*.json arrays of sentences: one file = one document,\n"
      "                     sentences joined by newlines\n"
      "Each document is GPT-2 encoded and followed by one <|endoftext|> (50256). A document goes to\n"
      "val iff a hash of (seed, document id) falls below --val-fraction, so the split does not depend\n"
      "on the order or number of sources.\n"
      "Output in --out: train-00000.bin, ..., val-00000.bin, ... (256-byte header \"LNFTOKS\", then\n"
      "uint16 tokens) and manifest.json (tokenizer hash, sources, split rule and seed, per split the\n"
      "shard files with token and document counts); see docs/data.md. Shards are staged in a hidden\n"
      "folder and manifest.json is written last, so a folder with a manifest is always complete.\n"
      "Prints documents and tokens per source and split, and the time taken; a run longer than 10 s\n"
      "also logs progress (input bytes read of the total, as stored on disk, and the time left).");
  cmd->callback([args] { run_prepare(*args); });
});

}  // namespace
}  // namespace lnfree::apps
