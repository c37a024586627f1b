// lnfree: LayerNorm removal for GPT-2 models. This file only assembles the subcommands, each of
// which lives in its own cmd_*.cpp, and turns lnfree::Error into a clear message and exit code 1.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <vector>

#include "apps/command_registry.h"
#include "util/build_info.h"
#include "util/error.h"
#include "util/malloc_tuning.h"

namespace lnfree::apps {

std::vector<CommandRegistration>& command_registry() {
  static std::vector<CommandRegistration> registry;
  return registry;
}

std::vector<CommandRegistration>& bench_registry() {
  static std::vector<CommandRegistration> registry;
  return registry;
}

namespace {
RegisterCommand register_bench("bench", [](CLI::App& root) {
  auto* bench = root.add_subcommand("bench", "Benchmarks that print measured throughput");
  bench->require_subcommand(1);
  auto& entries = bench_registry();
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const auto& entry : entries) entry.add(*bench);
});
}  // namespace

}  // namespace lnfree::apps

int main(int argc, char** argv) {
  using namespace lnfree::apps;
  const bool heap_tuned = lnfree::keep_large_allocations_in_the_heap();  // util/malloc_tuning.h: 5x on CPU
  CLI::App app{
      "lnfree: remove every LayerNorm from GPT-2 models by fine-tuning, and measure how many\n"
      "tokens each model size needs. Run `lnfree <command> --help` for details."};
  app.set_version_flag("--version",
                       "lnfree " + lnfree::build_version() + " (" + lnfree::build_git_commit() + ")");
  app.require_subcommand(1);
  auto& entries = command_registry();
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const auto& entry : entries) entry.add(app);

  // Progress and diagnostics go to stderr; stdout carries only a command's results.
  spdlog::set_default_logger(spdlog::stderr_color_mt("lnfree"));
  if (!heap_tuned) spdlog::debug("mallopt refused the heap settings; large buffers stay mmap()ed");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const lnfree::Error& e) {
    std::fprintf(stderr, "lnfree: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lnfree: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
