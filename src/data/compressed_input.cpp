#include "data/compressed_input.h"

#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "util/error.h"

namespace lnfree::data {
namespace {

// Compressed bytes are read, and decoded bytes produced, this many at a time.
constexpr std::size_t kChunk = 1u << 20;

// Thrown by a codec, caught by LineReader, which adds the file and the position. `produced`: the
// bytes the failing call wrote before it noticed (a checksum fails only after the whole frame), so
// the position reported is where the error was detected.
class CorruptData : public std::runtime_error {
 public:
  explicit CorruptData(const std::string& what, std::size_t produced = 0)
      : std::runtime_error(what), produced(produced) {}
  std::size_t produced;
};

// What a codec says when the file ends inside a frame/member/stream.
std::string truncated_message(Compression c) {
  return fmt::format("truncated {} data: the file ends inside a compressed {} (an interrupted download?)",
                     compression_name(c), c == Compression::kGzip ? "member" : "stream");
}

bool starts_with_bytes(std::string_view s, std::string_view magic) {
  return s.size() >= magic.size() && s.substr(0, magic.size()) == magic;
}

Compression compression_of_magic(std::string_view head) {
  if (starts_with_bytes(head, std::string_view("\x28\xB5\x2F\xFD", 4))) return Compression::kZstd;
  if (starts_with_bytes(head, std::string_view("\x1F\x8B", 2))) return Compression::kGzip;
  if (starts_with_bytes(head, std::string_view("\xFD"
                                               "7zXZ\0",
                                               6)))
    return Compression::kXz;
  return Compression::kNone;
}

std::string hex_bytes(std::string_view s, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < std::min(n, s.size()); ++i) {
    out += fmt::format("{}{:02x}", i ? " " : "", static_cast<unsigned char>(s[i]));
  }
  return out;
}

}  // namespace

// Decodes in[pos, end) (advancing pos) into out. Returns the bytes written, 0 only once all input
// is consumed; with `last` (no input follows), 0 means the clean end of the data. Throws
// CorruptData for bad or incomplete data.
struct LineReader::Codec {
  virtual ~Codec() = default;
  virtual std::size_t decode(const char* in, std::size_t& pos, std::size_t end, char* out,
                             std::size_t capacity, bool last) = 0;
};

namespace {

struct PlainCodec : LineReader::Codec {
  std::size_t decode(const char* in, std::size_t& pos, std::size_t end, char* out, std::size_t capacity,
                     bool) override {
    const std::size_t n = std::min(capacity, end - pos);
    std::memcpy(out, in + pos, n);
    pos += n;
    return n;
  }
};

struct ZstdCodec : LineReader::Codec {
  ZstdCodec() : dctx(ZSTD_createDCtx()) {
    if (!dctx) throw CorruptData("zstd: cannot allocate a decompression context");
  }
  ~ZstdCodec() override { ZSTD_freeDCtx(dctx); }

  std::size_t decode(const char* in, std::size_t& pos, std::size_t end, char* out, std::size_t capacity,
                     bool last) override {
    // At most one block's output per call: a failing call loses what it wrote, so this keeps the
    // reported position within a block of the damage.
    ZSTD_outBuffer output{out, std::min(capacity, ZSTD_DStreamOutSize()), 0};
    for (;;) {
      ZSTD_inBuffer input{in + pos, end - pos, 0};
      const std::size_t before = output.pos;
      const std::size_t hint = ZSTD_decompressStream(dctx, &output, &input);
      pos += input.pos;
      if (ZSTD_isError(hint)) throw CorruptData(ZSTD_getErrorName(hint), output.pos);
      // 0: a frame ended and all of its output was flushed. A call that did nothing says nothing
      // (after a frame's end it would already ask for the next frame's header).
      if (input.pos > 0 || output.pos > before) frame_complete = hint == 0;
      if (output.pos > 0) return output.pos;
      // Nothing came out and nothing went in: the decoder needs more input.
      if (input.pos == 0) break;
    }
    if (pos != end) throw CorruptData("zstd: decoder stalled");  // not expected; never loop forever
    if (last && !frame_complete) throw CorruptData(truncated_message(Compression::kZstd));
    return 0;
  }

  ZSTD_DCtx* dctx;
  bool frame_complete = false;
};

struct GzipCodec : LineReader::Codec {
  GzipCodec() {
    // 16 + MAX_WBITS: gzip wrapping only (the magic said gzip), with the largest window.
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) throw CorruptData("zlib: cannot initialise inflate");
  }
  ~GzipCodec() override { inflateEnd(&z); }

  std::size_t decode(const char* in, std::size_t& pos, std::size_t end, char* out, std::size_t capacity,
                     bool last) override {
    z.next_out = reinterpret_cast<Bytef*>(out);
    z.avail_out = static_cast<uInt>(capacity);
    for (;;) {
      if (member_done) {
        if (pos == end) break;
        inflateReset(&z);  // another member follows (pigz, `cat a.gz b.gz`)
        member_done = false;
      }
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in + pos));
      z.avail_in = static_cast<uInt>(end - pos);
      const int status = inflate(&z, Z_NO_FLUSH);
      pos = end - z.avail_in;
      const std::size_t produced = capacity - z.avail_out;
      if (status == Z_STREAM_END) {
        member_done = true;
      } else if (status != Z_OK && status != Z_BUF_ERROR) {  // Z_BUF_ERROR: no progress, needs input
        throw CorruptData(fmt::format("zlib: {}", z.msg ? z.msg : zError(status)), produced);
      }
      if (produced > 0) return produced;
      if (status == Z_BUF_ERROR || (pos == end && !member_done)) break;
    }
    if (last && !member_done) throw CorruptData(truncated_message(Compression::kGzip));
    return 0;
  }

  z_stream z{};
  bool member_done = false;
};

const char* lzma_message(lzma_ret status) {
  switch (status) {
    case LZMA_MEM_ERROR:
      return "out of memory";
    case LZMA_FORMAT_ERROR:
      return "not in the .xz format";
    case LZMA_OPTIONS_ERROR:
      return "unsupported compression options";
    case LZMA_DATA_ERROR:
      return "compressed data is corrupt";
    case LZMA_BUF_ERROR:
      return "compressed data is truncated or otherwise corrupt";
    default:
      return "internal error";
  }
}

struct XzCodec : LineReader::Codec {
  XzCodec() {
    // LZMA_CONCATENATED: read concatenated .xz streams as one, as `xz -d` does.
    if (lzma_stream_decoder(&s, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK)
      throw CorruptData("liblzma: cannot initialise the decoder");
  }
  ~XzCodec() override { lzma_end(&s); }

  std::size_t decode(const char* in, std::size_t& pos, std::size_t end, char* out, std::size_t capacity,
                     bool last) override {
    if (ended) return 0;
    s.next_out = reinterpret_cast<uint8_t*>(out);
    s.avail_out = capacity;
    for (;;) {
      s.next_in = reinterpret_cast<const uint8_t*>(in + pos);
      s.avail_in = end - pos;
      // With LZMA_CONCATENATED the end of the data is only known when told that no input follows.
      const lzma_ret status = lzma_code(&s, last ? LZMA_FINISH : LZMA_RUN);
      pos = end - s.avail_in;
      const std::size_t produced = capacity - s.avail_out;
      if (status == LZMA_STREAM_END) {
        ended = true;
        return produced;
      }
      if (status == LZMA_BUF_ERROR && last) throw CorruptData(truncated_message(Compression::kXz));
      if (status != LZMA_OK) throw CorruptData(fmt::format("liblzma: {}", lzma_message(status)), produced);
      if (produced > 0) return produced;
      // liblzma answers LZMA_BUF_ERROR on the second call without progress, so `last` cannot loop.
      if (pos == end && !last) return 0;
    }
  }

  lzma_stream s = LZMA_STREAM_INIT;
  bool ended = false;
};

}  // namespace

const char* compression_name(Compression compression) {
  switch (compression) {
    case Compression::kNone:
      return "plain";
    case Compression::kZstd:
      return "zstd";
    case Compression::kGzip:
      return "gzip";
    case Compression::kXz:
      return "xz";
  }
  return "unknown";
}

Compression compression_of_name(std::string_view file_name) {
  auto ends_with = [&](std::string_view suffix) {
    return file_name.size() >= suffix.size() && file_name.substr(file_name.size() - suffix.size()) == suffix;
  };
  if (ends_with(".zst")) return Compression::kZstd;
  if (ends_with(".gz")) return Compression::kGzip;
  if (ends_with(".xz")) return Compression::kXz;
  return Compression::kNone;
}

std::string_view without_compression_suffix(std::string_view file_name) {
  const Compression c = compression_of_name(file_name);
  if (c == Compression::kNone) return file_name;
  return file_name.substr(0, file_name.rfind('.'));
}

LineReader::LineReader(const std::string& path) : path_(path) {
  file_.reset(std::fopen(path.c_str(), "rb"));
  if (!file_) fail("{}: cannot open: {}", path, std::strerror(errno));
  std::error_code error;
  file_size_ = std::filesystem::file_size(path, error);
  input_.resize(kChunk);
  refill_input();
  const std::string_view head(input_.data(), input_end_);
  compression_ = compression_of_magic(head);
  const Compression named = compression_of_name(path);
  if (named != Compression::kNone && named != compression_) {
    const char* name = compression_name(named);
    if (compression_ != Compression::kNone) {
      fail("{}: named *{} but holds {} data; rename it", path, path.substr(path.rfind('.')),
           compression_name(compression_));
    }
    if (head.empty()) fail("{}: empty file; expected {} data", path, name);
    fail(
        "{}: named *{} but does not start with {}'s magic bytes (it starts with {}): a mislabelled "
        "file, or an error page saved by a failed download?",
        path, path.substr(path.rfind('.')), name, hex_bytes(head, 8));
  }
  try {
    switch (compression_) {
      case Compression::kNone:
        codec_ = std::make_unique<PlainCodec>();
        break;
      case Compression::kZstd:
        codec_ = std::make_unique<ZstdCodec>();
        break;
      case Compression::kGzip:
        codec_ = std::make_unique<GzipCodec>();
        break;
      case Compression::kXz:
        codec_ = std::make_unique<XzCodec>();
        break;
    }
  } catch (const CorruptData& e) {
    fail("{}: {}", path, e.what());
  }
}

LineReader::~LineReader() = default;

void LineReader::refill_input() {
  const std::size_t n = std::fread(input_.data(), 1, input_.size(), file_.get());
  if (n < input_.size()) {
    if (std::ferror(file_.get())) {
      fail("{}: read error after {} bytes: {}", path_, file_bytes_read_ + n, std::strerror(errno));
    }
    file_ended_ = true;
  }
  input_pos_ = 0;
  input_end_ = n;
  file_bytes_read_ += n;
}

std::size_t LineReader::decode(char* out, std::size_t capacity) {
  for (;;) {
    if (input_pos_ == input_end_ && !file_ended_) refill_input();
    std::size_t n = 0;
    try {
      n = codec_->decode(input_.data(), input_pos_, input_end_, out, capacity, file_ended_);
    } catch (const CorruptData& e) {
      // The line of the detection point: lines already returned, plus the complete lines still
      // buffered and those the failing call wrote (`out` continues the buffer).
      const auto newlines = [](const char* begin, const char* end) {
        return static_cast<std::uint64_t>(std::count(begin, end, '\n'));
      };
      const std::uint64_t line = line_number_ + 1 +
                                 newlines(lines_.data() + lines_begin_, lines_.data() + lines_end_) +
                                 newlines(out, out + e.produced);
      fail("{}:{}: corrupt {} data, detected at uncompressed byte {}: {}", path_, line,
           compression_name(compression_), decoded_bytes_ + e.produced, e.what());
    }
    decoded_bytes_ += n;
    if (n > 0 || file_ended_) return n;
  }
}

bool LineReader::next(std::string_view& line) {
  std::size_t scan = lines_begin_;
  for (;;) {
    if (const void* newline = std::memchr(lines_.data() + scan, '\n', lines_end_ - scan)) {
      const std::size_t end = static_cast<std::size_t>(static_cast<const char*>(newline) - lines_.data());
      line = std::string_view(lines_.data() + lines_begin_, end - lines_begin_);
      lines_begin_ = end + 1;
      ++line_number_;
      return true;
    }
    if (decoded_all_) {
      if (lines_begin_ == lines_end_) return false;
      line = std::string_view(lines_.data() + lines_begin_, lines_end_ - lines_begin_);
      lines_begin_ = lines_end_;
      ++line_number_;
      return true;
    }
    // Move the partial line to the front and decode more behind it; the buffer grows only for a
    // line longer than a chunk.
    const std::size_t partial = lines_end_ - lines_begin_;
    std::memmove(lines_.data(), lines_.data() + lines_begin_, partial);
    lines_begin_ = 0;
    lines_end_ = partial;
    scan = partial;
    if (lines_.size() - lines_end_ < kChunk) lines_.resize(std::max(2 * lines_.size(), lines_end_ + kChunk));
    const std::size_t n = decode(lines_.data() + lines_end_, lines_.size() - lines_end_);
    if (n == 0) decoded_all_ = true;
    lines_end_ += n;
  }
}

}  // namespace lnfree::data
