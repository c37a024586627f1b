// libFuzzer target: the document readers of `lnfree prepare`. The first input byte picks the file the
// rest becomes (its name decides the kind, by auto-detection, as `--source PATH` does):
//   0 doc.txt   1 data.jsonl   2 data.jsonl.gz   3 data.jsonl.zst   4 data.jsonl.xz
//   5 doc-00.json (nlp-corpus)   6 ca01 in a folder (Brown)
// Each mode has its own folder, holding only that file. brown_to_text also sees the raw bytes.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "data/corpus_readers.h"
#include "fuzz_support.h"

namespace {

struct Mode {
  const char* name;
  bool folder;  // the source is the folder (Brown), not the file
};
constexpr Mode kModes[] = {{"doc.txt", false},
                           {"data.jsonl", false},
                           {"data.jsonl.gz", false},
                           {"data.jsonl.zst", false},
                           {"data.jsonl.xz", false},
                           {"doc-00.json", false},
                           {"ca01", true}};
constexpr std::size_t kModeCount = sizeof(kModes) / sizeof(kModes[0]);

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view raw = lnfree::fuzz::as_text(data, size);
  (void)lnfree::data::brown_to_text(raw);
  if (size == 0) return 0;
  const Mode& mode = kModes[data[0] % kModeCount];
  const std::string dir = lnfree::fuzz::scratch_dir() + "/mode-" + std::to_string(data[0] % kModeCount);
  std::filesystem::create_directories(dir);
  const std::string file = dir + "/" + mode.name;
  lnfree::fuzz::write_bytes(file, raw.substr(1));
  lnfree::fuzz::run_expecting_errors([&] {
    const auto source = lnfree::data::parse_source_spec(mode.folder ? dir : file);
    auto reader = lnfree::data::open_source(source);
    lnfree::data::Document doc;
    const std::string prefix = std::string(lnfree::data::source_kind_name(source.kind)) + ":";
    while (reader->next(doc)) {
      FUZZ_CHECK(doc.id.compare(0, prefix.size(), prefix) == 0,
                 "document id '" + doc.id + "' lacks " + prefix);
      const auto progress = reader->progress();
      FUZZ_CHECK(progress.bytes_read <= progress.bytes_total, "read more bytes than the source has");
    }
  });
  return 0;
}
