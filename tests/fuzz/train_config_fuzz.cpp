// libFuzzer target: the TOML run config and its `--set` overrides. The input is the TOML text, then
// optionally NUL bytes, each followed by one override ("section.key=value"), as the CLI passes them.
// A config that parses must also: give a removal schedule or an lnfree::Error for a 12-layer model,
// and round-trip through its canonical TOML (same text, same hash) - an lnfree::Error there is a
// finding, since lnfree writes that text into every run folder and reads it back on resume.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "config/removal_schedule.h"
#include "config/train_config.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lnfree::config;
  const std::string input(lnfree::fuzz::as_text(data, size));
  std::vector<std::string> pieces;
  for (std::size_t begin = 0;;) {
    const std::size_t end = input.find('\0', begin);
    pieces.push_back(input.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  const std::string toml = pieces.front();
  const std::vector<std::string> overrides(pieces.begin() + 1, pieces.end());

  lnfree::fuzz::run_expecting_errors([&] {
    const TrainConfig config = parse_train_config(toml, "fuzz.toml", overrides);
    const std::string canonical = to_canonical_toml(config);
    try {
      const TrainConfig again = parse_train_config(canonical, "canonical.toml");
      FUZZ_CHECK(to_canonical_toml(again) == canonical, "canonical TOML changed on re-parse:\n" + canonical);
      FUZZ_CHECK(config_hash(again) == config_hash(config), "config hash changed on re-parse");
    } catch (const lnfree::Error& e) {
      FUZZ_CHECK(false, std::string("canonical TOML does not parse: ") + e.what() + "\n" + canonical);
    }
    for (const auto& set : config.eval.sets) (void)eval_set_name(parse_eval_set(set, "fuzz.toml"));
    const RemovalSchedule schedule = RemovalSchedule::of(config, 12);
    if (const auto window = schedule.removal_window()) {
      FUZZ_CHECK(window->first <= window->second, "removal window is reversed");
      (void)schedule.events_at(window->first);
    }
    (void)gradient_accumulation_steps(config.data, 1, config.origin);
  });
  return 0;
}
