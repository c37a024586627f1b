// `prepare_dataset` with a byte-level stand-in tokenizer (id = byte value, EOT = 256), so these
// tests check sharding, splitting, the manifest and atomicity independently of GPT-2's BPE.
#include "data/prepare.h"

#include <gtest/gtest.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "data/compress_tools.h"
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

  // Every file of a prepared folder, by name.
  static std::map<std::string, std::string> files_of(const std::string& dir) {
    std::map<std::string, std::string> files;
    for (const auto& e : fs::directory_iterator(dir)) {
      files[e.path().filename().string()] = lnfree::read_file(e.path().string());
    }
    return files;
  }

  fs::path root_;
};

// Sends spdlog's default logger to a string while alive.
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("captured", sink));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  std::string text() const { return stream_.str(); }

 private:
  std::ostringstream stream_;
  std::shared_ptr<spdlog::logger> previous_;
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

TEST_F(PrepareRun, CompressedJsonLinesGiveByteIdenticalShards) {
  // The plain run: texts + web.jsonl, and a folder of JSON Lines files.
  fs::create_directories(root_ / "plain" / "sub");
  std::string a, b;
  for (int i = 0; i < 30; ++i) a += "{\"text\": \"folder a " + std::to_string(i) + "\"}\n";
  for (int i = 0; i < 30; ++i) b += "{\"text\": \"folder b " + std::to_string(i) + "\"}\n";
  lnfree::write_file_atomically((root_ / "plain" / "a.jsonl").string(), a);
  lnfree::write_file_atomically((root_ / "plain" / "sub" / "b.jsonl").string(), b);
  auto plain = options("out-plain");
  plain.sources.push_back((root_ / "plain").string());  // auto-detected: jsonl
  lnfree::data::prepare_dataset(plain, byte_encoder());
  const auto expected = files_of(plain.out_dir);
  const auto expected_splits = manifest(plain.out_dir)["splits"];
  ASSERT_GT(expected_splits["val"]["documents"].get<int>(), 0);

  // The same files compressed, one codec per run; the folder mixes all three codecs.
  const std::vector<std::string> suffixes = {".zst", ".gz", ".xz"};
  for (std::size_t k = 0; k < suffixes.size(); ++k) {
    const std::string& suffix = suffixes[k];
    const fs::path packed = root_ / ("packed" + suffix);
    fs::create_directories(packed / "folder" / "sub");
    ASSERT_NO_FATAL_FAILURE(lnfree::testing::compress_file(
        (root_ / "web.jsonl").string(), (packed / ("web.jsonl" + suffix)).string(), suffix));
    ASSERT_NO_FATAL_FAILURE(lnfree::testing::compress_file(
        (root_ / "plain" / "a.jsonl").string(), (packed / "folder" / ("a.jsonl" + suffix)).string(), suffix));
    const std::string& other = suffixes[(k + 1) % suffixes.size()];
    ASSERT_NO_FATAL_FAILURE(
        lnfree::testing::compress_file((root_ / "plain" / "sub" / "b.jsonl").string(),
                                       (packed / "folder" / "sub" / ("b.jsonl" + other)).string(), other));
    auto o = options("out" + suffix);
    o.sources = {plain.sources[0], (packed / ("web.jsonl" + suffix)).string(), (packed / "folder").string()};
    lnfree::data::prepare_dataset(o, byte_encoder());
    const auto got = files_of(o.out_dir);
    ASSERT_EQ(got.size(), expected.size()) << suffix;
    for (const auto& [name, bytes] : expected) {
      if (name == "manifest.json") continue;  // it names the sources, which differ
      EXPECT_TRUE(got.at(name) == bytes) << suffix << ": " << name << " differs from the plain run's";
    }
    EXPECT_EQ(manifest(o.out_dir)["splits"], expected_splits) << suffix;
    EXPECT_EQ(manifest(o.out_dir)["sources"][1]["kind"], "jsonl");
    EXPECT_EQ(manifest(o.out_dir)["sources"][2]["kind"], "jsonl");
  }
}

TEST_F(PrepareRun, TruncatedOrCorruptCompressedInputNamesTheFile) {
  std::string lines;
  for (int i = 0; i < 3000; ++i) lines += "{\"text\": \"line " + std::to_string(i) + "\"}\n";
  const std::string plain = (root_ / "big.jsonl").string();
  lnfree::write_file_atomically(plain, lines);
  for (const std::string suffix : {".zst", ".gz"}) {
    ASSERT_NO_FATAL_FAILURE(lnfree::testing::compress_file(plain, plain + suffix, suffix));
    const std::string bytes = lnfree::read_file(plain + suffix);
    const std::string truncated = (root_ / ("truncated.jsonl" + suffix)).string();
    lnfree::write_file_atomically(truncated, bytes.substr(0, bytes.size() - 7));
    std::string corrupted_bytes = bytes;
    for (std::size_t i = bytes.size() / 2; i < bytes.size() / 2 + 8; ++i) corrupted_bytes[i] ^= 0x5a;
    const std::string corrupt = (root_ / ("corrupt.jsonl" + suffix)).string();
    lnfree::write_file_atomically(corrupt, corrupted_bytes);
    for (const std::string& bad : {truncated, corrupt}) {
      auto o = options("out");
      o.sources = {bad};
      try {
        lnfree::data::prepare_dataset(o, byte_encoder());
        ADD_FAILURE() << bad << ": accepted";
      } catch (const lnfree::Error& e) {
        const std::string message = e.what();
        EXPECT_EQ(message.rfind(bad + ":", 0), 0u) << message;
        // Corrupt bytes may decode to a bad JSON line before the codec's checksum catches them;
        // a truncated file decodes cleanly up to the cut.
        if (bad == truncated) {
          EXPECT_NE(message.find("corrupt " + lnfree::testing::compressor_for(suffix) +
                                 " data, detected at uncompressed byte"),
                    std::string::npos)
              << message;
        }
      }
      EXPECT_FALSE(fs::exists(o.out_dir)) << "a failed run left its output folder";
    }
  }
}

TEST_F(PrepareRun, CompressedTwinsAreTheSameSource) {
  ASSERT_NO_FATAL_FAILURE(lnfree::testing::compress_file((root_ / "web.jsonl").string(),
                                                         (root_ / "web.jsonl.gz").string(), ".gz"));
  auto o = options("out");
  o.sources.push_back((root_ / "web.jsonl.gz").string());
  EXPECT_THROW(lnfree::data::prepare_dataset(o, byte_encoder()), lnfree::Error);
}

TEST(PrepareProgress, MessageGivesBytesAndAnEstimateFromTheRateSoFar) {
  EXPECT_EQ(lnfree::data::progress_message(2'500'000'000, 10'000'000'000, 123456, 600),
            "prepare: 2.50 GB of 10.00 GB input read (25.0%), 123456 documents, 10 min 00 s so far; "
            "about 30 min 00 s left at this rate");
  EXPECT_EQ(lnfree::data::progress_message(300'000'000, 400'000'000, 10, 7200),
            "prepare: 300.0 MB of 400.0 MB input read (75.0%), 10 documents, 2 h 00 min so far; "
            "about 40 min 00 s left at this rate");
  EXPECT_EQ(
      lnfree::data::progress_message(0, 400, 0, 12),
      "prepare: 0 bytes of 400 bytes input read (0.0%), 0 documents, 12 s so far; time left unknown yet "
      "at this rate");
}

TEST_F(PrepareRun, ProgressLinesOnlyForLongRuns) {
  {
    CapturedLog log;
    lnfree::data::prepare_dataset(options("quiet"), byte_encoder());  // well under 10 s
    EXPECT_EQ(log.text().find("input read"), std::string::npos) << log.text();
  }
  CapturedLog log;
  auto o = options("chatty");
  o.progress_seconds = 0;  // a line after every batch
  lnfree::data::prepare_dataset(o, byte_encoder());
  const std::string text = log.text();
  EXPECT_NE(text.find("input read ("), std::string::npos) << text;
  // The last line has read every byte of the inputs, as sized on disk.
  std::uint64_t total = fs::file_size(root_ / "web.jsonl");
  for (const auto& e : fs::directory_iterator(root_ / "texts")) total += fs::file_size(e.path());
  EXPECT_NE(text.find(fmt::format("{} bytes of {} bytes input read (100.0%), 99 documents", total, total)),
            std::string::npos)
      << text;
}
