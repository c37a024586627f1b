// `prepare_dataset` with a byte-level stand-in tokenizer (id = byte value, EOT = 256), so these
// tests check sharding, splitting, the manifest and atomicity independently of GPT-2's BPE.
#include "data/prepare.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "data/token_loader.h"
#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;
using lnfree::data::PrepareOptions;
using lnfree::data::TextEncoder;
using lnfree::data::TokenSplit;

namespace {

constexpr std::int32_t kEot = 256;

TextEncoder byte_encoder() {
  TextEncoder encoder;
  encoder.encode_append = [](std::string_view text, std::vector<std::int32_t>& out) {
    for (unsigned char c : text) out.push_back(c);
  };
  encoder.vocab_size = 257;
  encoder.hash = "bytes-test";
  encoder.end_of_text = kEot;
  encoder.description = "one id per byte";
  return encoder;
}

class PrepareRun : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ =
        fs::temp_directory_path() /
        ("lnfree_prepare_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "texts");
    // 60 small text documents plus one JSON Lines file of 40 documents (one blank text).
    for (int i = 0; i < 60; ++i) {
      lnfree::write_file_atomically((root_ / "texts" / ("doc" + std::to_string(100 + i) + ".txt")).string(),
                                    "text document number " + std::to_string(i) + std::string(i % 7, '!'));
    }
    std::string lines;
    for (int i = 0; i < 40; ++i) {
      lines += i == 13 ? "{\"text\": \"\"}\n" : "{\"text\": \"json line " + std::to_string(i) + "\"}\n";
    }
    lnfree::write_file_atomically((root_ / "web.jsonl").string(), lines);
  }
  void TearDown() override { fs::remove_all(root_); }

  PrepareOptions options(const std::string& out) const {
    PrepareOptions o;
    o.sources = {"text:" + (root_ / "texts").string(), "jsonl:" + (root_ / "web.jsonl").string()};
    o.out_dir = (root_ / out).string();
    o.val_fraction = 0.2;
    o.shard_tokens = 500;
    o.seed = 11;
    o.threads = 2;
    return o;
  }

  static nlohmann::json manifest(const std::string& dir) {
    return nlohmann::json::parse(lnfree::read_file(dir + "/manifest.json"));
  }

  // The split's tokens, cut at EOTs back into documents (bytes).
  static std::vector<std::string> documents_of(const std::string& dir, const std::string& split) {
    auto tokens = TokenSplit::from_manifest(dir, split, "bytes-test");
    std::vector<std::int64_t> ids(tokens->size());
    tokens->copy(0, ids.size(), ids.data());
    std::vector<std::string> docs(1);
    for (auto id : ids) {
      if (id == kEot) {
        docs.emplace_back();
      } else {
        docs.back() += static_cast<char>(id);
      }
    }
    EXPECT_TRUE(docs.back().empty()) << "split does not end with an EOT";
    docs.pop_back();
    return docs;
  }

  fs::path root_;
};

}  // namespace

TEST_F(PrepareRun, WritesShardsAndManifestThatTheLoaderReads) {
  const auto o = options("out");
  const auto summary = lnfree::data::prepare_dataset(o, byte_encoder());
  const auto m = manifest(o.out_dir);
  EXPECT_EQ(m["format_version"], 1);
  EXPECT_EQ(m["tokenizer"]["hash"], "bytes-test");
  EXPECT_EQ(m["token_dtype"], "uint16");
  EXPECT_EQ(m["split"]["seed"], 11);
  ASSERT_EQ(m["sources"].size(), 2u);
  EXPECT_EQ(m["sources"][1]["empty_documents_skipped"], 1);

  // 60 + 39 documents, each followed by one EOT, split by the id hash.
  const std::int64_t documents = m["splits"]["train"]["documents"].get<std::int64_t>() +
                                 m["splits"]["val"]["documents"].get<std::int64_t>();
  EXPECT_EQ(documents, 99);
  EXPECT_GT(m["splits"]["val"]["documents"].get<int>(), 5);
  EXPECT_EQ(summary.train.counts.documents, m["splits"]["train"]["documents"].get<std::int64_t>());

  // Every shard but the last holds exactly shard_tokens tokens; the loader sees the same totals.
  for (const char* split : {"train", "val"}) {
    const auto& shards = m["splits"][split]["shards"];
    std::int64_t total = 0;
    for (std::size_t i = 0; i < shards.size(); ++i) {
      const std::int64_t tokens = shards[i]["tokens"];
      if (i + 1 < shards.size()) EXPECT_EQ(tokens, 500) << split << " shard " << i;
      EXPECT_EQ(shards[i]["file"], fmt::format("{}-{:05d}.bin", split, i));
      EXPECT_EQ(fs::file_size(o.out_dir + "/" + shards[i]["file"].get<std::string>()), 256u + 2 * tokens);
      total += tokens;
    }
    EXPECT_EQ(total, m["splits"][split]["tokens"].get<std::int64_t>());
    EXPECT_EQ(TokenSplit::from_manifest(o.out_dir, split)->size(), static_cast<std::uint64_t>(total));
  }
  EXPECT_GT(m["splits"]["train"]["shards"].size(), 1u);

  // The documents come back in source order, each in the split its id hashes to.
  const auto train = documents_of(o.out_dir, "train");
  const auto val = documents_of(o.out_dir, "val");
  std::vector<std::string> expected_train, expected_val;
  for (int i = 0; i < 60; ++i) {
    const std::string id = "text:doc" + std::to_string(100 + i) + ".txt";
    const std::string text = "text document number " + std::to_string(i) + std::string(i % 7, '!');
    (lnfree::data::is_validation_document(id, 11, 0.2) ? expected_val : expected_train).push_back(text);
  }
  for (int i = 0; i < 40; ++i) {
    if (i == 13) continue;
    const std::string id = "jsonl:web.jsonl:" + std::to_string(i + 1);
    (lnfree::data::is_validation_document(id, 11, 0.2) ? expected_val : expected_train)
        .push_back("json line " + std::to_string(i));
  }
  EXPECT_EQ(train, expected_train);
  EXPECT_EQ(val, expected_val);
  // No staging folder is left behind.
  for (const auto& entry : fs::directory_iterator(o.out_dir)) {
    EXPECT_NE(entry.path().filename().string()[0], '.') << entry.path();
  }
}

TEST_F(PrepareRun, RerunIsByteIdenticalWhateverTheThreadCount) {
  auto a = options("a"), b = options("b");
  a.threads = 1;
  b.threads = 2;
  lnfree::data::prepare_dataset(a, byte_encoder());
  lnfree::data::prepare_dataset(b, byte_encoder());
  std::vector<std::string> files_a, files_b;
  for (const auto& e : fs::directory_iterator(a.out_dir)) files_a.push_back(e.path().filename().string());
  for (const auto& e : fs::directory_iterator(b.out_dir)) files_b.push_back(e.path().filename().string());
  std::sort(files_a.begin(), files_a.end());
  std::sort(files_b.begin(), files_b.end());
  ASSERT_EQ(files_a, files_b);
  for (const auto& f : files_a) {
    EXPECT_EQ(lnfree::read_file(a.out_dir + "/" + f), lnfree::read_file(b.out_dir + "/" + f)) << f;
  }
}

TEST_F(PrepareRun, SplitDoesNotDependOnSourceOrderOrCount) {
  auto both = options("both"), reversed = options("reversed"), alone = options("alone");
  reversed.sources = {both.sources[1], both.sources[0]};
  alone.sources = {both.sources[1]};
  lnfree::data::prepare_dataset(both, byte_encoder());
  lnfree::data::prepare_dataset(reversed, byte_encoder());
  lnfree::data::prepare_dataset(alone, byte_encoder());
  const auto jsonl_counts = [](const nlohmann::json& m) {
    for (const auto& s : m["sources"]) {
      if (s["kind"] == "jsonl") return s["val"].dump() + s["train"].dump();
    }
    return std::string("missing");
  };
  EXPECT_EQ(jsonl_counts(manifest(both.out_dir)), jsonl_counts(manifest(reversed.out_dir)));
  EXPECT_EQ(jsonl_counts(manifest(both.out_dir)), jsonl_counts(manifest(alone.out_dir)));
  EXPECT_EQ(documents_of(alone.out_dir, "val").size(),
            manifest(both.out_dir)["sources"][1]["val"]["documents"].get<std::size_t>());
}

TEST(SplitRule, FractionIsHonouredAndSeedMatters) {
  int val = 0, same = 0;
  for (int i = 0; i < 10000; ++i) {
    const std::string id = "text:file" + std::to_string(i);
    const bool a = lnfree::data::is_validation_document(id, 1, 0.1);
    val += a;
    same += a == lnfree::data::is_validation_document(id, 2, 0.1);
  }
  std::printf("val documents: %d of 10000 at fraction 0.1; seeds 1 and 2 agree on %d\n", val, same);
  EXPECT_GT(val, 900);
  EXPECT_LT(val, 1100);
  EXPECT_LT(same, 9500);  // a different seed draws a different split (independent draws agree ~82%)
  EXPECT_FALSE(lnfree::data::is_validation_document("x", 1, 0.0));
  EXPECT_TRUE(lnfree::data::is_validation_document("x", 1, 1.0));
}

TEST_F(PrepareRun, RefusesToOverwriteUnlessForcedAndReplacesOnlyItsOwnFiles) {
  auto o = options("out");
  o.shard_tokens = 100;  // many shards
  lnfree::data::prepare_dataset(o, byte_encoder());
  const auto first_shards = manifest(o.out_dir)["splits"]["train"]["shards"].size();
  lnfree::write_file_atomically(o.out_dir + "/notes.txt", "mine");

  try {
    lnfree::data::prepare_dataset(o, byte_encoder());
    ADD_FAILURE() << "overwrote a prepared data set without --force";
  } catch (const lnfree::Error& e) {
    EXPECT_NE(std::string(e.what()).find("already holds a prepared data set"), std::string::npos) << e.what();
  }

  o.force = true;
  o.shard_tokens = 1000000;  // one shard per split now: the old extra shards must go
  lnfree::data::prepare_dataset(o, byte_encoder());
  EXPECT_GT(first_shards, 1u);
  EXPECT_EQ(manifest(o.out_dir)["splits"]["train"]["shards"].size(), 1u);
  EXPECT_FALSE(fs::exists(o.out_dir + "/train-00001.bin"));
  EXPECT_EQ(lnfree::read_file(o.out_dir + "/notes.txt"), "mine");

  // A non-empty folder without a manifest is refused too.
  auto other = options("other");
  fs::create_directories(other.out_dir);
  lnfree::write_file_atomically(other.out_dir + "/x", "x");
  EXPECT_THROW(lnfree::data::prepare_dataset(other, byte_encoder()), lnfree::Error);
}

TEST_F(PrepareRun, FailedRunLeavesTheOldDataSetAndNoPartialFiles) {
  auto o = options("out");
  lnfree::data::prepare_dataset(o, byte_encoder());
  const std::string old_manifest = lnfree::read_file(o.out_dir + "/manifest.json");
  const std::string old_shard = lnfree::read_file(o.out_dir + "/train-00000.bin");

  lnfree::write_file_atomically((root_ / "bad.jsonl").string(), "{\"text\": \"ok\"}\n{\"txt\": \"bad\"}\n");
  o.sources.push_back("jsonl:" + (root_ / "bad.jsonl").string());
  o.force = true;
  try {
    lnfree::data::prepare_dataset(o, byte_encoder());
    ADD_FAILURE() << "bad JSON Lines accepted";
  } catch (const lnfree::Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2: field 'text': missing"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(lnfree::read_file(o.out_dir + "/manifest.json"), old_manifest);
  EXPECT_EQ(lnfree::read_file(o.out_dir + "/train-00000.bin"), old_shard);
  for (const auto& entry : fs::directory_iterator(o.out_dir)) {
    EXPECT_NE(entry.path().filename().string()[0], '.') << "left behind: " << entry.path();
  }

  // A failed run into a new folder does not leave the folder behind either.
  auto fresh = options("fresh");
  fresh.sources = o.sources;
  EXPECT_THROW(lnfree::data::prepare_dataset(fresh, byte_encoder()), lnfree::Error);
  EXPECT_FALSE(fs::exists(fresh.out_dir));
}

TEST_F(PrepareRun, SameSourceTwiceIsAnError) {
  auto o = options("out");
  o.sources.push_back(o.sources[0]);
  EXPECT_THROW(lnfree::data::prepare_dataset(o, byte_encoder()), lnfree::Error);
}

TEST_F(PrepareRun, LoaderRejectsAManifestThatDisagreesWithItsShards) {
  const auto o = options("out");
  lnfree::data::prepare_dataset(o, byte_encoder());
  auto m = manifest(o.out_dir);
  m["splits"]["val"]["shards"][0]["tokens"] = 3;
  lnfree::write_file_atomically(o.out_dir + "/manifest.json", m.dump());
  try {
    TokenSplit::from_manifest(o.out_dir, "val");
    ADD_FAILURE() << "token count mismatch accepted";
  } catch (const lnfree::Error& e) {
    EXPECT_NE(std::string(e.what()).find("val-00000.bin: field 'token_count': expected 3 tokens"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(TokenSplit::from_manifest(o.out_dir, "test"), lnfree::Error);  // no such split
  EXPECT_THROW(TokenSplit::from_manifest(o.out_dir, "train", "other-hash"),
               lnfree::Error);  // wrong tokenizer
}
