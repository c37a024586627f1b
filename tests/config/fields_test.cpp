// The config engine (config/fields.h) on a small field list of its own, and the run config's enum
// fields through it.
#include "config/fields.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/train_config.h"
#include "error_of.h"
#include "util/error.h"

namespace lc = lnfree::config;

using lnfree::test_support::error_of;

namespace {

enum class Colour { kRed, kGreen };
constexpr std::array<std::string_view, 2> kColourNames = {"red", "green"};
constexpr const auto& names_of(Colour) { return kColourNames; }

struct Widget {
  std::string name;
  std::int64_t size = 3;
  Colour colour = Colour::kRed;
  std::optional<double> weight;
  std::vector<std::int64_t> gaps = {1, 2};

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("name", s.name, "what it is called", lc::kRequired);
    visit("size", s.size, "how big | in units");
    visit("colour", s.colour, "its colour");
    visit("weight", s.weight, "absent when unknown");
    visit("gaps", s.gaps, "spacing");
  }
};

Widget read(const std::string& text) {
  const std::string origin = "w.toml";
  const toml::table table = toml::parse(text, origin);
  Widget w;
  lc::read_table<Widget>(w, table, {"w.toml", "widget"});
  return w;
}

const std::string kMinimalRun = R"(
[run]
mode = "finetune"
init = "gpt2"
[data]
train = "tokens/manifest.json"
micro_batch = 4
tokens_per_step = 8192
steps = 40
[optim]
warmup = 5
)";

}  // namespace

TEST(ConfigFields, ReadsTypedValuesAndKeepsDefaults) {
  const Widget w = read("name = \"a\"\ncolour = \"green\"\nweight = 2\n");
  EXPECT_EQ(w.name, "a");
  EXPECT_EQ(w.size, 3);
  EXPECT_EQ(w.colour, Colour::kGreen);
  ASSERT_TRUE(w.weight);
  EXPECT_DOUBLE_EQ(*w.weight, 2.0);
  EXPECT_EQ(lc::write_fields<Widget>(w),
            "name = \"a\"\nsize = 3\ncolour = \"green\"\nweight = 2.0\ngaps = [1, 2]\n");
  EXPECT_EQ(lc::write_fields<Widget>(Widget{}), "name = \"\"\nsize = 3\ncolour = \"red\"\ngaps = [1, 2]\n");
}

TEST(ConfigFields, ErrorsNameTheFileLineFieldAndWhatWasExpected) {
  const std::string unknown = error_of([] { read("name = \"a\"\nsizes = 2\n"); });
  EXPECT_NE(unknown.find("w.toml:2: [widget] unknown key 'sizes' (known: name size colour weight gaps)"),
            std::string::npos)
      << unknown;
  const std::string missing = error_of([] { read("size = 2\n"); });
  EXPECT_NE(missing.find("w.toml: [widget] missing field 'name': expected a string"), std::string::npos)
      << missing;
  const std::string type = error_of([] { read("name = \"a\"\ngaps = [1, \"x\"]\n"); });
  EXPECT_NE(
      type.find("w.toml:2: field 'widget.gaps': expected a list of integers, got string \"x\" at index 1"),
      std::string::npos)
      << type;
}

TEST(ConfigFields, AnEnumFieldRejectsAWrongNameListingTheAllowedOnes) {
  const std::string file = error_of([] { read("name = \"a\"\ncolour = \"blue\"\n"); });
  EXPECT_NE(file.find("w.toml:2: field 'widget.colour': expected one of red | green, got string \"blue\""),
            std::string::npos)
      << file;
  const std::string not_a_string = error_of([] { read("name = \"a\"\ncolour = 1\n"); });
  EXPECT_NE(not_a_string.find("expected one of red | green, got integer 1"), std::string::npos)
      << not_a_string;
  Widget w;
  const std::string text =
      error_of([&] { lc::set_field<Widget>(w, "colour", "blue", "--set 'colour=blue'"); });
  EXPECT_EQ(text, "--set 'colour=blue': expected one of red | green, got \"blue\"");
  ASSERT_TRUE(lc::set_field<Widget>(w, "colour", "\"green\"", "--set"));
  EXPECT_EQ(w.colour, Colour::kGreen);

  // The run config's enums, from a file and from --set.
  const std::string run_file =
      error_of([] { lc::parse_train_config(kMinimalRun + "[ln]\nqk_sigma = \"both\"\n", "run.toml"); });
  EXPECT_NE(run_file.find(
                "run.toml:13: field 'ln.qk_sigma': expected one of shared | separate, got string \"both\""),
            std::string::npos)
      << run_file;
  const std::string run_set =
      error_of([] { lc::parse_train_config(kMinimalRun, "run.toml", {"run.precision=fp16"}); });
  EXPECT_NE(
      run_set.find("run.toml: --set 'run.precision=fp16': field 'run.precision': expected one of fp32 | "
                   "tf32 | bf16, got \"fp16\""),
      std::string::npos)
      << run_set;
}

TEST(ConfigFields, OptionalFieldsAreClearedByNone) {
  Widget w;
  ASSERT_TRUE(lc::set_field<Widget>(w, "weight", "0.5", "--set"));
  EXPECT_DOUBLE_EQ(*w.weight, 0.5);
  ASSERT_TRUE(lc::set_field<Widget>(w, "weight", "none", "--set"));
  EXPECT_FALSE(w.weight);
  EXPECT_FALSE(lc::set_field<Widget>(w, "height", "1", "--set"));
}

TEST(ConfigFields, MarkdownListsTypeDefaultAndHelp) {
  const std::string md = lc::fields_markdown<Widget>(Widget{});
  EXPECT_NE(md.find("| `name` | string | required | what it is called |"), std::string::npos) << md;
  EXPECT_NE(md.find("| `size` | int | `3` | how big \\| in units |"), std::string::npos) << md;
  EXPECT_NE(md.find("| `colour` | string: red, green | `\"red\"` | its colour |"), std::string::npos) << md;
  EXPECT_NE(md.find("| `weight` | float | absent | absent when unknown |"), std::string::npos) << md;
}

TEST(TrainConfig, RequiredFieldsMayComeFromTheFileOrFromSet) {
  const std::string no_mode =
      kMinimalRun.substr(0, kMinimalRun.find("mode")) + kMinimalRun.substr(kMinimalRun.find("init"));
  const std::string message = error_of([&] { lc::parse_train_config(no_mode, "run.toml"); });
  EXPECT_NE(
      message.find("run.toml: [run] missing field 'mode': expected one of pretrain | finetune | remove-ln"),
      std::string::npos)
      << message;
  EXPECT_EQ(lc::parse_train_config(no_mode, "run.toml", {"run.mode=pretrain"}).run.mode,
            lc::RunMode::kPretrain);
}
