// lnfree vocab: choose a smaller vocabulary (the K most frequent tokens of a training split).
#include <fmt/format.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "apps/command_registry.h"
#include "data/token_loader.h"
#include "data/vocab_remap.h"
#include "util/error.h"
#include "util/files.h"

namespace lnfree::apps {
namespace {

struct VocabOptions {
  std::string data;
  std::string split = "train";
  std::int64_t top = 4096;
  std::string out;
};

RegisterCommand reg("vocab", [](CLI::App& root) {
  auto* cmd = root.add_subcommand(
      "vocab",
      "Keep the K most frequent GPT-2 tokens of a split (+ UNK + EOT): a vocabulary for tiny models");
  auto o = std::make_shared<VocabOptions>();
  cmd->add_option("--data", o->data, "Token manifest.json (from lnfree prepare) or its folder")->required();
  cmd->add_option("--split", o->split, "Split whose token counts decide")->capture_default_str();
  cmd->add_option("--top", o->top, "K: tokens kept; the vocabulary has K + 2 entries")->capture_default_str();
  cmd->add_option("--out", o->out, "Output JSON (use as [data] vocab_remap)")->required();
  cmd->footer(
      "New ids: 0..K-1 the kept tokens (most frequent first), K = UNK (every other token), K+1 = EOT.\n"
      "Prints the share of tokens that become UNK in every split of the manifest.");
  cmd->callback([o] {
    auto base = data::TokenSplit::from_manifest(o->data, o->split);
    auto remap = data::VocabRemap::from_counts(*base, o->top);
    std::map<std::string, double> shares;
    for (const char* split : {"train", "val"}) {
      try {
        shares[split] = remap.unk_share(*data::TokenSplit::from_manifest(o->data, split));
      } catch (const Error&) {
        continue;  // a manifest without this split
      }
    }
    write_file_atomically(o->out, remap.to_json(base->description(), base->tokenizer_hash(), shares));
    fmt::print("kept the {} most frequent tokens of {}; vocabulary {} (UNK {}, EOT {})\n", remap.top(),
               base->description(), remap.vocab_size(), remap.unk_id(), remap.eot_id());
    for (const auto& [split, share] : shares) fmt::print("  UNK share {:<5} {:.2f}%\n", split, 100 * share);
    fmt::print("wrote {}\n", o->out);
  });
});

}  // namespace
}  // namespace lnfree::apps
