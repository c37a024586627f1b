#include "data/vocab_remap.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/token_loader.h"
#include "data/token_shard.h"
#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;
using lnfree::data::TokenShardBuilder;
using lnfree::data::TokenSplit;
using lnfree::data::VocabRemap;

namespace {

std::shared_ptr<const TokenSplit> shard_of(const fs::path& path, const std::vector<std::int32_t>& ids) {
  TokenShardBuilder builder(50257, "hash");
  builder.append(ids);
  builder.write_and_clear(path.string());
  return TokenSplit::from_shards({path.string()});
}

}  // namespace

TEST(VocabRemap, KeepsTheMostFrequentTokensAndMapsTheRestToUnk) {
  const auto dir = fs::temp_directory_path() / "lnfree_vocab_remap";
  fs::create_directories(dir);
  // 7 x id 5, 4 x id 9, 2 x id 3, 1 x id 1, EOTs (never counted among the kept ones).
  auto split = shard_of(dir / "a.bin", {5, 5, 9, 5, 3, 50256, 9, 5, 5, 1, 9, 5, 3, 9, 5, 50256, 50256});
  auto remap = VocabRemap::from_counts(*split, 2);
  EXPECT_EQ(remap.kept(), (std::vector<std::int32_t>{5, 9}));
  EXPECT_EQ(remap.vocab_size(), 4);
  std::vector<std::int64_t> ids = {5, 9, 3, 50256, 1, 77777};
  remap.apply(ids.data(), ids.size());
  EXPECT_EQ(ids, (std::vector<std::int64_t>{0, 1, 2, 3, 2, 2}));  // UNK = 2, EOT = 3
  EXPECT_NEAR(remap.unk_share(*split), 3.0 / 17.0, 1e-12);

  // Round trip through the JSON file, and a split that reads remapped tokens.
  const auto path = (dir / "vocab.json").string();
  lnfree::write_file_atomically(path, remap.to_json("test", "hash", {{"train", 0.1}}));
  auto loaded = std::make_shared<const VocabRemap>(VocabRemap::load(path));
  EXPECT_EQ(loaded->kept(), remap.kept());
  auto remapped = TokenSplit::from_shards({(dir / "a.bin").string()}, "", loaded);
  EXPECT_EQ(remapped->vocab_size(), 4u);
  std::vector<std::int64_t> first(6);
  remapped->copy(0, 6, first.data());
  EXPECT_EQ(first, (std::vector<std::int64_t>{0, 0, 1, 0, 2, 3}));
  fs::remove_all(dir);
}

TEST(VocabRemap, BadFilesNameTheFileAndField) {
  const auto path = (fs::temp_directory_path() / "lnfree_bad_vocab.json").string();
  lnfree::write_file_atomically(path, R"({"format": "lnfree-vocab", "kept": [5, 5], "vocab_size": 4})");
  try {
    VocabRemap::load(path);
    FAIL() << "expected an error";
  } catch (const lnfree::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("kept[1]"), std::string::npos);
  }
  lnfree::write_file_atomically(path, R"({"format": "other"})");
  EXPECT_THROW(VocabRemap::load(path), lnfree::Error);
  fs::remove(path);
}

// Found while writing tests/fuzz/vocab_remap: a file that is not an object, or whose vocab_size is not a number,
// raised nlohmann's type_error from json.value() instead of an lnfree::Error, and ids beyond int32
// wrapped around (4294967301 became 5).
TEST(VocabRemap, MalformedFilesAreErrorsNamingTheField) {
  const auto path = (fs::temp_directory_path() / "lnfree_malformed_vocab.json").string();
  const auto expect_error = [&](const std::string& text, const std::string& fragment) {
    lnfree::write_file_atomically(path, text);
    try {
      VocabRemap::load(path);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const lnfree::Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_error("[1, 2]", "expected a JSON object");
  expect_error(R"({"format": 3, "kept": [], "vocab_size": 2})", "field 'format'");
  expect_error(R"({"format": "lnfree-vocab", "kept": [1], "vocab_size": "3"})", "field 'vocab_size'");
  expect_error(R"({"format": "lnfree-vocab", "kept": [4294967301], "vocab_size": 3})", "field 'kept[0]'");
  expect_error(R"({"format": "lnfree-vocab", "kept": [18446744073709551615], "vocab_size": 3})",
               "field 'kept[0]'");
  lnfree::write_file_atomically(path, R"({"format": "lnfree-vocab", "kept": [7, 3], "vocab_size": 4})");
  EXPECT_EQ(VocabRemap::load(path).kept(), (std::vector<std::int32_t>{7, 3}));
  fs::remove(path);
}
