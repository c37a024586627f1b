// Document sources for `lnfree prepare`: each reader turns files on disk into a stream of
// documents (UTF-8 text plus a stable id). A source is named by a spec string "KIND:PATH", or just
// "PATH" to auto-detect the kind:
//
//   text:FILE_OR_DIR    one document per file (a folder is walked recursively; hidden files are
//                       skipped; a file containing NUL bytes is an error, it is not text)
//   jsonl:FILE_OR_DIR   JSON Lines, one object per line with a string field "text" (OpenWebText,
//                       The Pile); a folder means its *.jsonl files, plain or compressed
//                       (*.jsonl.zst, *.jsonl.gz, *.jsonl.xz: streamed, compressed_input.h);
//                       blank lines are skipped
//   brown:DIR           the Brown corpus' word/TAG files (ca01 .. cr09): tags are stripped, words
//                       joined by single spaces, one paragraph per line; one document per file
//   nlp-corpus:DIR      nlp-corpus' builds/doc-*.json: every *.json file of the folder, each a
//                       JSON array of sentence strings (a single such file also works). One FILE is one
//                       document, its sentences joined by "\n". The sentences of a file are unrelated to each
//                       other, but per-sentence documents would put an EOT every ~20 tokens, far denser than
//                       in the web text the models were trained on; per-file documents keep EOT rare and keep
//                       the split coarse. DIR may be the package folder (its builds/ is used) or builds/
//                       itself.
//
// Auto-detection (no KIND prefix): a *.jsonl file (or *.jsonl.zst, .gz, .xz) is jsonl, a *.json
// file nlp-corpus, any other file text (but another compressed file is an error); a folder holding
// Brown file names (c[a-z][0-9][0-9]) is brown, one holding doc-*.json (directly or in builds/) is
// nlp-corpus, one holding *.jsonl (plain or compressed) is jsonl, else text.
//
// Document ids are "KIND:RELATIVE_PATH" (JSONL appends ":LINE"), relative to the source's root,
// so they depend neither on where the corpus lives nor on the order or number of sources; the
// train/val split hashes them (prepare.h). A compressed JSON Lines file's id uses its name without
// the compression suffix: data.jsonl.zst's documents are "jsonl:data.jsonl:LINE", exactly those of
// the decompressed data.jsonl, so compressing a corpus changes neither its split nor its shards
// (a folder holding both a.jsonl and a.jsonl.gz is therefore an error). Files are read in byte-wise
// sorted order of their relative paths (compressed names included), so the document order is the
// same on every machine.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lnfree::data {

struct Document {
  std::string id;
  std::string text;
};

enum class SourceKind { kText, kJsonLines, kBrown, kNlpCorpus };

// "text", "jsonl", "brown", "nlp-corpus": the spec prefix and the id prefix.
const char* source_kind_name(SourceKind kind);

struct SourceSpec {
  SourceKind kind = SourceKind::kText;
  std::string path;  // file or folder the documents come from
  std::string spec;  // the string the user gave
};

// Parses "KIND:PATH" or auto-detects the kind of "PATH". Throws lnfree::Error for an unknown
// kind, a missing path, or a path of the wrong type (a file where a folder is needed).
SourceSpec parse_source_spec(const std::string& spec);

// How much of a source's input has been read: bytes as stored on disk (compressed bytes for
// compressed files), of the sizes of all its files.
struct InputProgress {
  std::uint64_t bytes_read = 0;
  std::uint64_t bytes_total = 0;
};

class DocumentReader {
 public:
  virtual ~DocumentReader() = default;
  // Replaces `doc` with the next document and returns true, or returns false at the end.
  // Throws lnfree::Error naming the file (and line, for JSONL) when the input is malformed.
  virtual bool next(Document& doc) = 0;
  virtual InputProgress progress() const = 0;
};

std::unique_ptr<DocumentReader> open_source(const SourceSpec& source);

// Every document of a source, in order (tests and small corpora).
std::vector<Document> read_all_documents(const SourceSpec& source);

// Brown corpus word/TAG text -> plain text. Each whitespace-separated token loses everything from
// its last '/' on (the tag; "1-1/2/cd" -> "1-1/2", "//in" -> "/"); a token with no '/' is kept
// whole. Words are joined by single spaces; consecutive non-blank lines form a paragraph, and
// paragraphs (separated by blank lines in the source) are joined by "\n".
std::string brown_to_text(std::string_view tagged);

// True for a Brown corpus file name: 'c', a category letter, two digits ("ca01").
bool is_brown_file_name(std::string_view name);

}  // namespace lnfree::data
