// libFuzzer target: the input is a whole .safetensors file (8-byte length, JSON header, data).
// Whatever the reader accepts must be self-consistent (every tensor's bytes inside the file, float
// tensors convertible) and must survive write_safetensors -> SafetensorsReader unchanged: the
// writer's output failing to read back is a finding, not an lnfree::Error to swallow.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.h"
#include "io/safetensors.h"

namespace {

using lnfree::io::SafetensorsReader;

void check_round_trip(const SafetensorsReader& reader) {
  std::vector<lnfree::io::TensorToWrite> tensors;
  for (const auto& name : reader.names())
    tensors.push_back({name, reader.dtype(name), reader.shape(name), reader.bytes(name)});
  const std::string copy = lnfree::fuzz::scratch_dir() + "/copy.safetensors";
  lnfree::io::write_safetensors(copy, tensors, reader.metadata());
  try {
    const SafetensorsReader again(copy);
    FUZZ_CHECK(again.names() == reader.names(), "tensor names changed in the round trip");
    FUZZ_CHECK(again.metadata() == reader.metadata(), "metadata changed in the round trip");
    for (const auto& name : reader.names()) {
      const auto a = reader.bytes(name), b = again.bytes(name);
      FUZZ_CHECK(again.dtype(name) == reader.dtype(name) && again.shape(name) == reader.shape(name) &&
                     a.size == b.size && (a.size == 0 || std::memcmp(a.data, b.data, a.size) == 0),
                 "tensor '" + name + "' changed in the round trip");
    }
  } catch (const lnfree::Error& e) {
    FUZZ_CHECK(false, std::string("write_safetensors wrote a file its reader rejects: ") + e.what());
  }
}

// The reader memory-maps the file, and ASan does not see reads past a mapping that stay inside its
// last page, so the tensors' bytes are compared with the input instead: sorted by address they
// must tile the data section, i.e. concatenate to the input after its 8 + N header bytes.
void check_tiling(const SafetensorsReader& reader, std::string_view input) {
  std::vector<lnfree::io::ByteSpan> spans;
  for (const auto& name : reader.names()) {
    const auto span = reader.bytes(name);
    FUZZ_CHECK(span.size ==
                   static_cast<std::size_t>(reader.numel(name)) * lnfree::io::dtype_size(reader.dtype(name)),
               "tensor '" + name + "': byte count differs from numel * dtype size");
    if (span.size != 0) spans.push_back(span);
    if (lnfree::io::is_float_dtype(reader.dtype(name))) (void)reader.read_as_f32(name);
  }
  std::sort(spans.begin(), spans.end(), [](const auto& a, const auto& b) { return a.data < b.data; });
  std::string joined;
  for (std::size_t i = 0; i < spans.size(); ++i) {
    FUZZ_CHECK(i == 0 || spans[i - 1].data + spans[i - 1].size == spans[i].data,
               "tensors do not tile the data");
    joined.append(reinterpret_cast<const char*>(spans[i].data), spans[i].size);
  }
  std::uint64_t header_size = 0;
  std::memcpy(&header_size, input.data(), 8);
  FUZZ_CHECK(joined == input.substr(8 + header_size), "tensor bytes differ from the file's data section");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = lnfree::fuzz::scratch_dir() + "/input.safetensors";
  const std::string_view input = lnfree::fuzz::as_text(data, size);
  lnfree::fuzz::write_bytes(path, input);
  lnfree::fuzz::run_expecting_errors([&] {
    const SafetensorsReader reader(path);
    check_tiling(reader, input);
    check_round_trip(reader);
  });
  return 0;
}
