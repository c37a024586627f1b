// The safetensors format (https://github.com/huggingface/safetensors), read and written without
// LibTorch:
//   [8 bytes: N, little-endian u64] [N bytes: JSON header, padded with spaces] [data section]
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the data section) plus an optional "__metadata__" string->string map.
//
// The reader memory-maps the file and validates all of it before anything is used (the rules are
// listed in docs/checkpoints.md): every error names the file and, where there is one, the tensor.
// The writer produces what Python's `safetensors` produces, so HF tools read lnfree's files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "util/files.h"

namespace lnfree::io {

// The element types of the format, named as in the header. F8 types are parsed (so that such files
// can be inspected) but lnfree converts only F64, F32, F16 and BF16.
enum class Dtype {
  kBool,
  kU8,
  kI8,
  kF8E5M2,
  kF8E4M3,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kI64,
  kU64,
  kF64
};

std::size_t dtype_size(Dtype dtype);
const char* dtype_name(Dtype dtype);
// Returns false when `name` is not a dtype of the format.
bool parse_dtype(std::string_view name, Dtype* dtype);
// True for the dtypes that convert to F32: F64, F32, F16, BF16.
bool is_float_dtype(Dtype dtype);

// Bit-level conversions. F32 -> F16/BF16 round to nearest, ties to even; values beyond the F16 range
// become infinities, NaN stays NaN. F16/BF16 -> F32 are exact.
float f32_from_f16(std::uint16_t bits);
std::uint16_t f16_from_f32(float value);
float f32_from_bf16(std::uint16_t bits);
std::uint16_t bf16_from_f32(float value);

struct ByteSpan {
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;
};

// Formats a shape as "[2, 3]" for messages.
std::string format_shape(const std::vector<std::int64_t>& shape);

class SafetensorsReader {
 public:
  // Maps and validates `path`; throws lnfree::Error naming the file (and tensor) on any defect.
  explicit SafetensorsReader(const std::string& path);

  const std::string& path() const { return file_.path(); }
  // Tensor names in byte order (std::string comparison).
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  std::size_t size() const { return tensors_.size(); }

  // These throw lnfree::Error naming the file and `name` when there is no such tensor.
  Dtype dtype(const std::string& name) const;
  const std::vector<std::int64_t>& shape(const std::string& name) const;
  std::int64_t numel(const std::string& name) const;
  ByteSpan bytes(const std::string& name) const;

  // Converts a float tensor (F64/F32/F16/BF16) into `count` floats at `out`. Throws when the dtype
  // is not a float type or `count` differs from the tensor's element count.
  void read_as_f32(const std::string& name, float* out, std::size_t count) const;
  std::vector<float> read_as_f32(const std::string& name) const;

  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  struct Entry {
    Dtype dtype;
    std::vector<std::int64_t> shape;
    std::int64_t numel;
    std::uint64_t begin, end;  // within the data section
  };
  const Entry& entry(const std::string& name) const;

  MappedFile file_;
  const std::uint8_t* data_section_ = nullptr;
  std::map<std::string, Entry> tensors_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write: `bytes` must hold product(shape) * dtype_size(dtype) bytes, little-endian.
struct TensorToWrite {
  std::string name;
  Dtype dtype;
  std::vector<std::int64_t> shape;
  ByteSpan bytes;
};

// Writes a safetensors file atomically (temp file + rename). The header lists "__metadata__"
// first (omitted when `metadata` is empty), is padded with spaces to a multiple of 8 bytes, and the
// data section stores tensors by decreasing element size, then by name - the order Python's
// safetensors uses, which keeps every tensor aligned to its element size. Throws on duplicate or
// reserved names and on byte counts that do not match the shape.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata);

}  // namespace lnfree::io
