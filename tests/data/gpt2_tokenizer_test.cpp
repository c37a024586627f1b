#include "data/gpt2_tokenizer.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "data/gpt2_pretokenizer.h"
#include "data/utf8.h"
#include "error_of.h"
#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;
using lnfree::data::Gpt2Tokenizer;
using Ids = std::vector<std::int32_t>;

using lnfree::test_support::error_of;

namespace {

const std::string kBpeDir = std::string(LNFREE_DATA_DIR) + "/bpe";

const Gpt2Tokenizer& tokenizer() {
  static const Gpt2Tokenizer instance = Gpt2Tokenizer::from_directory(kBpeDir);
  return instance;
}

std::vector<std::string> pieces_of(std::string_view text) {
  lnfree::data::Gpt2PreTokenizer scanner(text);
  std::vector<std::string> pieces;
  std::string_view piece;
  while (scanner.next(piece)) pieces.emplace_back(piece);
  return pieces;
}

// A fresh folder holding copies of the real BPE files, for tests that damage one of them.
std::string copy_bpe_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(kBpeDir + "/encoder.json", dir / "encoder.json");
  fs::copy_file(kBpeDir + "/vocab.bpe", dir / "vocab.bpe");
  return dir.string();
}

}  // namespace

// Expected ids come from npm tiktoken 1.0.22, get_encoding("gpt2").encode(text, "all").
TEST(Gpt2Tokenizer, KnownIdsFromTiktoken) {
  const std::vector<std::pair<std::string, Ids>> cases = {
      {"Hello world", {15496, 995}},
      {"Hello, world! It's 2024.", {15496, 11, 995, 0, 632, 338, 48609, 13}},
      {"DON'T don't I'M i'm", {41173, 6, 51, 836, 470, 314, 6, 44, 1312, 1101}},
      {"  leading and trailing  ", {220, 3756, 290, 25462, 220, 220}},
      {"a\t\tb\n\nc", {64, 197, 197, 65, 198, 198, 66}},
      {"naïve café 東京 😀", {2616, 38776, 40304, 10545, 251, 109, 12859, 105, 30325, 222}},
      {"1234567890", {10163, 2231, 30924, 3829}},
      {"\u00a0x\u3000y", {1849, 87, 5099, 222, 88}},
      {"'S'll", {6, 50, 1183}},
      {" 's", {705, 82}},
      {"\ufffd\ufffd\ufffd", {48585}},
      {"=" + std::string(100, '-'), {28, 10097, 3880, 650}},
      {"supercalifragilisticexpialidocioussupercalifragilisticexpialidocious"
       "supercalifragilisticexpialidocious!",
       {16668, 9948,  361,   22562, 346, 396,   501,   42372, 498,   312,   32346, 16668,
        9948,  361,   22562, 346,   396, 501,   42372, 498,   312,   32346, 16668, 9948,
        361,   22562, 346,   396,   501, 42372, 498,   312,   32346, 0}},
      {"", {}},
  };
  for (const auto& [text, expected] : cases) {
    EXPECT_EQ(tokenizer().encode(text), expected) << "text: '" << text << "'";
  }
}

TEST(Gpt2Tokenizer, LongDigitRunMatchesTiktoken) {
  // A 200-byte piece: takes the heap-based merge path, which must agree with tiktoken's order.
  std::string digits;
  for (int i = 0; i < 20; ++i) digits += "1234567890";
  Ids expected = {10163, 2231};
  for (int i = 0; i < 19; ++i) expected.insert(expected.end(), {3134, 4531, 486, 1954, 2231});
  expected.insert(expected.end(), {30924, 3829});
  EXPECT_EQ(tokenizer().encode(digits), expected);
}

TEST(Gpt2Tokenizer, EndOfTextLiteral) {
  const auto& t = tokenizer();
  EXPECT_EQ(t.encode("<|endoftext|>"), Ids({Gpt2Tokenizer::kEndOfText}));
  EXPECT_EQ(t.encode("a<|endoftext|>b"), Ids({64, 50256, 65}));
  EXPECT_EQ(t.encode("x <|endoftext|> y"), Ids({87, 220, 50256, 331}));
  EXPECT_EQ(t.encode("<|endoftext|><|endoftext|>"), Ids({50256, 50256}));
  EXPECT_EQ(t.decode({50256}), "<|endoftext|>");
  // Near misses are ordinary text.
  for (const char* text : {"<|endoftext|", "<|endoftext>", "<|EndOfText|>"}) {
    const Ids ids = t.encode(text);
    EXPECT_GT(ids.size(), 1u) << text;
    for (auto id : ids) EXPECT_NE(id, Gpt2Tokenizer::kEndOfText) << text;
    EXPECT_EQ(t.decode(ids), text);
  }
}

TEST(Gpt2Tokenizer, RoundTripValidUtf8) {
  const std::vector<std::string> texts = {
      "Hello world",
      "The/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd",
      "  \t mixed \u3000 spaces\u00a0\u2003here \n\r\n",
      "emoji 👩‍👩‍👧‍👦 🇩🇪 👍🏽 and e\u0301 combining",
      "中文 日本語 한국어 العربية עברית",
      "١٢٣ ١٢٣٤٥ １２３ 00000000000000000000000000000000000000000000000000000000000000000001",
      "'s 't 're 've 'm 'll 'd 'S 'T 'RE don't DON'T",
      std::string("\0\x01\x7f", 3),
  };
  for (const auto& text : texts) {
    EXPECT_EQ(tokenizer().decode(tokenizer().encode(text)), text);
  }
}

TEST(Gpt2Tokenizer, InvalidUtf8BecomesReplacementCharacters) {
  const auto& t = tokenizer();
  // Each maximal ill-formed subpart is one U+FFFD, as in Python's errors="replace" and node.
  EXPECT_EQ(t.encode("\xff"), t.encode("\ufffd"));
  EXPECT_EQ(t.encode("\xff"), Ids({4210}));
  EXPECT_EQ(t.encode("a\xe2\x82"
                     "b"),
            t.encode("a\ufffd"
                     "b"));
  EXPECT_EQ(t.encode("\xed\xa0\x80"), Ids({48585}));  // encoded surrogate: three U+FFFD
  EXPECT_EQ(t.decode(t.encode("x\xc0\xafy")), "x\ufffd\ufffdy");
  EXPECT_EQ(t.decode(t.encode("\xf4\x90\x80\x80")), "\ufffd\ufffd\ufffd\ufffd");
  EXPECT_EQ(t.decode(t.encode("\xf0\x9f\x98")), "\ufffd");

  // Random bytes: never a crash, and the round trip gives the repaired text.
  std::uint64_t state = 12345;
  std::size_t checked = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bytes;
    const int length = trial % 48;
    for (int i = 0; i < length; ++i) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      const auto r = static_cast<unsigned>(state >> 56);
      // Mix ASCII (spaces, letters, apostrophes) with high bytes so sequences are often almost valid.
      const char ascii[] = " a'sZ1\t<|";
      bytes.push_back(r < 96 ? ascii[r % 9] : static_cast<char>(0x80 + (r % 128)));
    }
    const std::string repaired = lnfree::data::replace_invalid_utf8(bytes);
    ASSERT_EQ(lnfree::data::valid_utf8_prefix(repaired), repaired.size());
    const Ids ids = t.encode(bytes);
    ASSERT_EQ(ids, t.encode(repaired)) << "trial " << trial;
    ASSERT_EQ(t.decode(ids), repaired) << "trial " << trial;
    ++checked;
  }
  std::printf("checked %zu random byte strings\n", checked);
}

TEST(Utf8, RepairMatchesPythonErrorsReplace) {
  using lnfree::data::replace_invalid_utf8;
  // Expected strings: Python 3.11 bytes.decode("utf-8", "replace"), also node's Buffer.toString().
  EXPECT_EQ(replace_invalid_utf8("\xff"), "\ufffd");
  EXPECT_EQ(replace_invalid_utf8("\xe2\x82"), "\ufffd");
  EXPECT_EQ(replace_invalid_utf8("\xed\xa0\x80"), "\ufffd\ufffd\ufffd");
  EXPECT_EQ(replace_invalid_utf8("\xc0\xaf"), "\ufffd\ufffd");
  EXPECT_EQ(replace_invalid_utf8("\xf0\x9f\x98"), "\ufffd");
  EXPECT_EQ(replace_invalid_utf8("\xf4\x90\x80\x80"), "\ufffd\ufffd\ufffd\ufffd");
  EXPECT_EQ(replace_invalid_utf8("a\xe2\x82"
                                 "b"),
            "a\ufffd"
            "b");
  EXPECT_EQ(replace_invalid_utf8("\xf0\x9f\x98\x80 ok"), "\xf0\x9f\x98\x80 ok");
  EXPECT_EQ(lnfree::data::valid_utf8_prefix("abcdefghij\xffk"), 10u);
}

TEST(Gpt2PreTokenizer, SplitsLikeGpt2Pattern) {
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces_of("a  b"), V({"a", " ", " b"}));
  EXPECT_EQ(pieces_of("a \tb"), V({"a", " ", "\t", "b"}));
  EXPECT_EQ(pieces_of("x  \n"), V({"x", "  \n"}));
  EXPECT_EQ(pieces_of("don't I'M"), V({"don", "'t", " I", "'", "M"}));
  EXPECT_EQ(pieces_of("'sa !'s ''ll"), V({"'s", "a", " !'", "s", " ''", "ll"}));
  EXPECT_EQ(pieces_of("hello!!! world42"), V({"hello", "!!!", " world", "42"}));
  EXPECT_EQ(pieces_of("e\u0301t\u00e9"), V({"e", "\u0301", "t\u00e9"}));          // marks are not letters
  EXPECT_EQ(pieces_of("a\u00a0\u00a0b"), V({"a", "\u00a0", "\u00a0", "b"}));      // NBSP is \s
  EXPECT_EQ(pieces_of("a\u200bb"), V({"a", "\u200b", "b"}));                      // ZWSP is not
  EXPECT_EQ(pieces_of(" \u0661\u0662 \uff11"), V({" \u0661\u0662", " \uff11"}));  // \p{N} digits
  EXPECT_EQ(pieces_of("𝐀𝐁 😀😀"), V({"𝐀𝐁", " 😀😀"}));  // supplementary letters and symbols
  EXPECT_EQ(pieces_of(" "), V({" "}));
}

TEST(Gpt2Tokenizer, DecodeRejectsIdsOutsideVocabulary) {
  EXPECT_EQ(tokenizer().vocab_size(), 50257);
  const std::string message = error_of([] { tokenizer().decode({15496, 50257}); });
  EXPECT_NE(message.find("50257"), std::string::npos) << message;
  EXPECT_NE(message.find("position 1"), std::string::npos) << message;
  EXPECT_NE(error_of([] { tokenizer().decode({-1}); }), "");
}

TEST(Gpt2Tokenizer, BadFilesNameTheFile) {
  const std::string missing = (fs::temp_directory_path() / "lnfree_no_such_bpe_dir").string();
  std::string message = error_of([&] { Gpt2Tokenizer::from_directory(missing); });
  EXPECT_NE(message.find(missing + "/encoder.json"), std::string::npos) << message;

  std::string dir = copy_bpe_dir("lnfree_bpe_bad_json");
  lnfree::write_file_atomically(dir + "/encoder.json", "{\"a\": 0,");
  message = error_of([&] { Gpt2Tokenizer::from_directory(dir); });
  EXPECT_NE(message.find(dir + "/encoder.json: not valid JSON"), std::string::npos) << message;

  lnfree::write_file_atomically(dir + "/encoder.json", "{\"!\": 0, \"\\\"\": \"one\"}");
  message = error_of([&] { Gpt2Tokenizer::from_directory(dir); });
  EXPECT_NE(message.find(dir + "/encoder.json: entry '\"'"), std::string::npos) << message;

  dir = copy_bpe_dir("lnfree_bpe_bad_merges");
  std::string merges = lnfree::read_file(dir + "/vocab.bpe");
  const std::size_t line3 = merges.find('\n', merges.find('\n') + 1) + 1;  // start of line 3
  merges.insert(line3, "x");                                               // "xĠ a": not token 257
  lnfree::write_file_atomically(dir + "/vocab.bpe", merges);
  message = error_of([&] { Gpt2Tokenizer::from_directory(dir); });
  EXPECT_NE(message.find(dir + "/vocab.bpe: line 3"), std::string::npos) << message;

  lnfree::write_file_atomically(dir + "/vocab.bpe", "#version: 0.2\nonlyonefield\n");
  message = error_of([&] { Gpt2Tokenizer::from_directory(dir); });
  EXPECT_NE(message.find(dir + "/vocab.bpe: line 2: expected two tokens"), std::string::npos) << message;
  fs::remove_all(fs::temp_directory_path() / "lnfree_bpe_bad_json");
  fs::remove_all(dir);
}

TEST(Gpt2Tokenizer, HashIdentifiesFileContents) {
  const std::string& hash = tokenizer().hash();
  ASSERT_EQ(hash.size(), 16u);
  EXPECT_EQ(hash.find_first_not_of("0123456789abcdef"), std::string::npos) << hash;
  EXPECT_EQ(Gpt2Tokenizer::from_directory(kBpeDir).hash(), hash);
  // Same vocabulary, different bytes (trailing whitespace): a different file, a different hash.
  const std::string dir = copy_bpe_dir("lnfree_bpe_hash");
  lnfree::write_file_atomically(dir + "/encoder.json", lnfree::read_file(dir + "/encoder.json") + "\n");
  const auto changed = Gpt2Tokenizer::from_directory(dir);
  EXPECT_NE(changed.hash(), hash);
  EXPECT_EQ(changed.encode("Hello world"), Ids({15496, 995}));
  fs::remove_all(dir);
}

TEST(Gpt2Tokenizer, ConcurrentEncodesAgree) {
  std::string text;
  for (int i = 0; i < 200; ++i)
    text += "Sentence " + std::to_string(i * 7919) + " of the test, don't split it. ";
  const Ids expected = tokenizer().encode(text);
  std::vector<Ids> results(4);
  std::vector<std::thread> threads;
  for (auto& result : results) {
    threads.emplace_back([&] {
      for (int r = 0; r < 5; ++r) result = tokenizer().encode(text);
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) EXPECT_EQ(result, expected);
}
