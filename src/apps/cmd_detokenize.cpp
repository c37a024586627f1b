// lnfree detokenize: the inverse of `lnfree tokenize`, lines of GPT-2 token ids back to text.
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "apps/command_registry.h"
#include "apps/line_io.h"
#include "data/gpt2_tokenizer.h"
#include "util/error.h"
#include "util/paths.h"

namespace lnfree::apps {
namespace {

// Parses the space-separated ids of one line into `ids`; a bad field is an error naming the line.
void parse_ids(std::string_view line, std::size_t line_number, std::int32_t vocab_size,
               std::vector<std::int32_t>& ids) {
  ids.clear();
  std::size_t i = 0;
  while (i < line.size()) {
    if (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < line.size() && line[end] != ' ' && line[end] != '\t' && line[end] != '\r') ++end;
    const std::string_view field = line.substr(i, end - i);
    std::int64_t id = -1;
    const auto [ptr, ec] = std::from_chars(field.data(), field.data() + field.size(), id);
    if (ec != std::errc() || ptr != field.data() + field.size() || id < 0 || id >= vocab_size) {
      fail("stdin line {}: token id '{}': expected an integer in [0, {})", line_number, field, vocab_size);
    }
    ids.push_back(static_cast<std::int32_t>(id));
    i = end;
  }
}

void run_detokenize(const std::string& bpe_dir) {
  const auto tokenizer = data::Gpt2Tokenizer::from_directory(bpe_dir);
  StdinLines lines;
  BufferedStdout out;
  std::vector<std::int32_t> ids;
  std::string_view line;
  std::size_t line_number = 0;
  try {
    while (lines.next(line)) {
      parse_ids(line, ++line_number, tokenizer.vocab_size(), ids);
      out.buffer() += tokenizer.decode(ids);
      out.buffer().push_back('\n');
      out.maybe_flush();
    }
  } catch (const Error&) {
    out.finish();  // the lines before the bad one are still written
    throw;
  }
  out.finish();
}

RegisterCommand reg("detokenize", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("detokenize", "Turn lines of GPT-2 token ids on stdin back into text");
  auto bpe_dir = std::make_shared<std::string>(default_bpe_dir());
  cmd->add_option("--bpe", *bpe_dir, "Folder with GPT-2's encoder.json and vocab.bpe")->capture_default_str();
  cmd->footer(
      "Input: one line per text, its token ids in decimal separated by spaces (the output of\n"
      "`lnfree tokenize`). Output: each line's decoded bytes followed by '\\n'. An id outside\n"
      "[0, 50257) or a field that is not a number is an error naming the line number and the id.\n"
      "Tokens may decode to partial UTF-8 sequences; bytes are written as they are.");
  cmd->callback([bpe_dir] { run_detokenize(*bpe_dir); });
});

}  // namespace
}  // namespace lnfree::apps
