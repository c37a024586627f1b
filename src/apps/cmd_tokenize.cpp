// lnfree tokenize: GPT-2 token ids of each line of stdin (a filter, for checks against other
// tokenizers and for quick looks at how text is split).
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "apps/command_registry.h"
#include "apps/line_io.h"
#include "data/gpt2_tokenizer.h"
#include "util/paths.h"

namespace lnfree::apps {
namespace {

void run_tokenize(const std::string& bpe_dir) {
  const auto tokenizer = data::Gpt2Tokenizer::from_directory(bpe_dir);
  StdinLines lines;
  BufferedStdout out;
  std::vector<std::int32_t> ids;
  std::string_view line;
  char number[16];
  while (lines.next(line)) {
    ids.clear();
    tokenizer.encode_append(line, ids);
    std::string& text = out.buffer();
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) text.push_back(' ');
      const auto end = std::to_chars(number, number + sizeof number, ids[i]).ptr;
      text.append(number, end);
    }
    text.push_back('\n');
    out.maybe_flush();
  }
  out.finish();
}

RegisterCommand reg("tokenize", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("tokenize", "Print the GPT-2 token ids of each line of stdin");
  auto bpe_dir = std::make_shared<std::string>(default_bpe_dir());
  cmd->add_option("--bpe", *bpe_dir, "Folder with GPT-2's encoder.json and vocab.bpe")->capture_default_str();
  cmd->footer(
      "Input: UTF-8 text on stdin, split on '\\n'. Output: for each input line, one line with its token\n"
      "ids in decimal, separated by single spaces (an empty line gives an empty line). The line's '\\n'\n"
      "is not encoded; any '\\r' is. The literal <|endoftext|> becomes id 50256. Invalid UTF-8 is\n"
      "encoded as if each ill-formed byte sequence were U+FFFD (Python's errors='replace').\n"
      "Ids are those of tiktoken's \"gpt2\" encoding.");
  cmd->callback([bpe_dir] { run_tokenize(*bpe_dir); });
});

}  // namespace
}  // namespace lnfree::apps
