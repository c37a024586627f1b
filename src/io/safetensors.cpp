#include "io/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <tuple>
#include <utility>

#include "util/error.h"

// Tensor bytes are copied to and from memory as they are: the format is little-endian.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "lnfree's safetensors code assumes a little-endian host");

namespace lnfree::io {
namespace {

// Python's safetensors refuses headers above 100 MB; a larger length means a corrupt file.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

struct DtypeInfo {
  Dtype dtype;
  const char* name;
  std::size_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {Dtype::kBool, "BOOL", 1},      {Dtype::kU8, "U8", 1},          {Dtype::kI8, "I8", 1},
    {Dtype::kF8E5M2, "F8_E5M2", 1}, {Dtype::kF8E4M3, "F8_E4M3", 1}, {Dtype::kI16, "I16", 2},
    {Dtype::kU16, "U16", 2},        {Dtype::kF16, "F16", 2},        {Dtype::kBF16, "BF16", 2},
    {Dtype::kI32, "I32", 4},        {Dtype::kU32, "U32", 4},        {Dtype::kF32, "F32", 4},
    {Dtype::kI64, "I64", 8},        {Dtype::kU64, "U64", 8},        {Dtype::kF64, "F64", 8},
};

const DtypeInfo& info(Dtype dtype) {
  for (const auto& entry : kDtypes)
    if (entry.dtype == dtype) return entry;
  fail("internal error: unknown safetensors dtype {}", static_cast<int>(dtype));
}

std::uint32_t bits_of(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

float float_of(std::uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

std::uint64_t read_u64_le(const std::uint8_t* p) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | p[i];
  return value;
}

void append_u64_le(std::string& out, std::uint64_t value) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

std::string describe(const nlohmann::json& value) {
  std::string text = value.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

// nlohmann keeps the last of two equal keys silently; a header with a repeated tensor name is
// ambiguous, so the parser callback tracks the keys of every open object and refuses repeats.
nlohmann::json parse_header(const std::string& path, const char* text, std::size_t size) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start) {
      open_objects.emplace_back();
    } else if (event == Event::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == Event::key && !open_objects.empty() && duplicate.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second) duplicate = key;
    }
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text, text + size, callback);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: safetensors header is not valid JSON: {}", path, e.what());
  }
  if (!duplicate.empty()) fail("{}: safetensors header: key '{}' appears more than once", path, duplicate);
  return header;
}

std::uint64_t checked_offset(const std::string& path, const std::string& name, const nlohmann::json& value) {
  if (!value.is_number_unsigned())
    fail("{}: tensor '{}': field 'data_offsets': expected non-negative integers, got {}", path, name,
         describe(value));
  return value.get<std::uint64_t>();
}

}  // namespace

std::size_t dtype_size(Dtype dtype) { return info(dtype).size; }
const char* dtype_name(Dtype dtype) { return info(dtype).name; }

bool parse_dtype(std::string_view name, Dtype* dtype) {
  for (const auto& entry : kDtypes) {
    if (name == entry.name) {
      *dtype = entry.dtype;
      return true;
    }
  }
  return false;
}

bool is_float_dtype(Dtype dtype) {
  return dtype == Dtype::kF64 || dtype == Dtype::kF32 || dtype == Dtype::kF16 || dtype == Dtype::kBF16;
}

float f32_from_f16(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1F;
  const std::uint32_t mantissa = bits & 0x3FF;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in F32.
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return float_of(sign | bits_of(magnitude));
  }
  if (exponent == 0x1F) return float_of(sign | 0x7F800000 | (mantissa << 13));  // inf / NaN
  return float_of(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
}

std::uint16_t f16_from_f32(float value) {
  const std::uint32_t bits = bits_of(value);
  const std::uint16_t sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000);
  const std::uint32_t magnitude = bits & 0x7FFFFFFF;
  if (magnitude > 0x7F800000) {
    // NaN: keep the top payload bits and force a quiet NaN so the payload cannot become zero (inf).
    return static_cast<std::uint16_t>(sign | 0x7E00 | ((magnitude >> 13) & 0x3FF));
  }
  // 65520 is halfway between F16's largest finite value 65504 and 2^16; ties go to the even
  // neighbour, which is infinity here.
  if (magnitude >= 0x477FF000) return static_cast<std::uint16_t>(sign | 0x7C00);
  if (magnitude < 0x38800000) {
    // Below F16's smallest normal (2^-14): the result is mantissa * 2^-24. Adding 0.5 (whose F32
    // ulp is 2^-24) makes the FPU round to that grid, ties to even.
    const float shifted = float_of(magnitude) + 0.5f;
    return static_cast<std::uint16_t>(sign | (bits_of(shifted) - bits_of(0.5f)));
  }
  // Normal range: rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits to
  // nearest, ties to even (add 0xFFF plus the lowest kept bit; a carry moves into the exponent).
  const std::uint32_t lowest_kept = (magnitude >> 13) & 1;
  const std::uint32_t rounded =
      magnitude + (static_cast<std::uint32_t>(15 - 127) << 23) + 0xFFF + lowest_kept;
  return static_cast<std::uint16_t>(sign | (rounded >> 13));
}

float f32_from_bf16(std::uint16_t bits) { return float_of(static_cast<std::uint32_t>(bits) << 16); }

std::uint16_t bf16_from_f32(float value) {
  const std::uint32_t bits = bits_of(value);
  if ((bits & 0x7FFFFFFF) > 0x7F800000)
    return static_cast<std::uint16_t>((bits >> 16) | 0x0040);  // quiet NaN
  const std::uint32_t lowest_kept = (bits >> 16) & 1;
  return static_cast<std::uint16_t>((bits + 0x7FFF + lowest_kept) >> 16);
}

std::string format_shape(const std::vector<std::int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + "]";
}

SafetensorsReader::SafetensorsReader(const std::string& path) : file_(path) {
  const std::uint8_t* bytes = file_.data();
  const std::uint64_t file_size = file_.size();
  if (file_size < 8)
    fail("{}: not a safetensors file: {} bytes, shorter than the 8-byte header length", path, file_size);
  const std::uint64_t header_size = read_u64_le(bytes);
  if (header_size > kMaxHeaderBytes)
    fail("{}: safetensors header length {} is absurd (limit {} bytes): corrupt or not a safetensors file",
         path, header_size, kMaxHeaderBytes);
  if (header_size > file_size - 8)
    fail("{}: safetensors header length {} runs past the end of the file ({} bytes after the length)", path,
         header_size, file_size - 8);
  const char* header_text = reinterpret_cast<const char*>(bytes + 8);
  const nlohmann::json header = parse_header(path, header_text, header_size);
  if (!header.is_object())
    fail("{}: safetensors header must be a JSON object, got {}", path, describe(header));

  data_section_ = bytes + 8 + header_size;
  const std::uint64_t data_size = file_size - 8 - header_size;

  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) {
      if (!value.is_object())
        fail("{}: '{}': expected an object of strings, got {}", path, name, describe(value));
      for (const auto& [key, text] : value.items()) {
        if (!text.is_string())
          fail("{}: '{}': entry '{}': expected a string, got {}", path, name, key, describe(text));
        metadata_[key] = text.get<std::string>();
      }
      continue;
    }
    if (!value.is_object())
      fail("{}: tensor '{}': expected an object with dtype, shape and data_offsets, got {}", path, name,
           describe(value));
    for (const auto& [key, field] : value.items()) {
      (void)field;
      if (key != "dtype" && key != "shape" && key != "data_offsets")
        fail("{}: tensor '{}': unknown field '{}' (expected dtype, shape, data_offsets)", path, name, key);
    }
    for (const char* key : {"dtype", "shape", "data_offsets"})
      if (!value.contains(key)) fail("{}: tensor '{}': missing field '{}'", path, name, key);

    Entry entry{};
    const auto& dtype = value["dtype"];
    if (!dtype.is_string() || !parse_dtype(dtype.get_ref<const std::string&>(), &entry.dtype))
      fail(
          "{}: tensor '{}': field 'dtype': unknown dtype {} (expected one of BOOL U8 I8 F8_E5M2 F8_E4M3 I16 "
          "U16 F16 BF16 I32 U32 F32 I64 U64 F64)",
          path, name, describe(dtype));

    const auto& shape = value["shape"];
    if (!shape.is_array())
      fail("{}: tensor '{}': field 'shape': expected a list of non-negative integers, got {}", path, name,
           describe(shape));
    // The element count is bounded by the file size, so an overflowing product is a corrupt file.
    std::uint64_t numel = 1;
    bool overflow = false;
    for (const auto& dim : shape) {
      if (!dim.is_number_unsigned() || dim.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
        fail("{}: tensor '{}': field 'shape': expected a list of non-negative integers, got {}", path, name,
             describe(shape));
      const std::uint64_t d = dim.get<std::uint64_t>();
      entry.shape.push_back(static_cast<std::int64_t>(d));
      if (d != 0 && numel > std::numeric_limits<std::uint64_t>::max() / d) overflow = true;
      numel *= d;
    }
    const std::uint64_t element_size = dtype_size(entry.dtype);
    if (overflow || numel > std::numeric_limits<std::uint64_t>::max() / element_size)
      fail("{}: tensor '{}': shape {} is too large for any file", path, name, describe(shape));

    const auto& offsets = value["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2)
      fail("{}: tensor '{}': field 'data_offsets': expected [begin, end], got {}", path, name,
           describe(offsets));
    entry.begin = checked_offset(path, name, offsets[0]);
    entry.end = checked_offset(path, name, offsets[1]);
    if (entry.begin > entry.end)
      fail("{}: tensor '{}': field 'data_offsets': begin {} is after end {}", path, name, entry.begin,
           entry.end);
    if (entry.end > data_size)
      fail("{}: tensor '{}': data_offsets [{}, {}] run past the data section ({} bytes)", path, name,
           entry.begin, entry.end, data_size);
    const std::uint64_t expected_bytes = numel * element_size;
    if (entry.end - entry.begin != expected_bytes)
      fail("{}: tensor '{}': data_offsets [{}, {}] hold {} bytes, but shape {} of {} needs {}", path, name,
           entry.begin, entry.end, entry.end - entry.begin, describe(shape), dtype_name(entry.dtype),
           expected_bytes);
    entry.numel = static_cast<std::int64_t>(numel);
    tensors_.emplace(name, std::move(entry));
  }

  // The tensors must tile the data section exactly, as Python's safetensors requires: sorted by
  // offset, each starts where the previous one ended, and the last ends at the end of the file.
  std::vector<std::pair<const std::string*, const Entry*>> by_offset;
  for (const auto& [name, entry] : tensors_) by_offset.emplace_back(&name, &entry);
  std::sort(by_offset.begin(), by_offset.end(), [](const auto& a, const auto& b) {
    return std::tie(a.second->begin, a.second->end, *a.first) <
           std::tie(b.second->begin, b.second->end, *b.first);
  });
  std::uint64_t covered = 0;
  const std::string* previous = nullptr;
  for (const auto& [name, entry] : by_offset) {
    if (entry->begin < covered)
      fail("{}: tensor '{}': bytes [{}, {}) overlap tensor '{}' (which ends at {})", path, *name,
           entry->begin, entry->end, *previous, covered);
    if (entry->begin > covered)
      fail("{}: tensor '{}': starts at byte {} of the data section, leaving unused bytes [{}, {}) before it",
           path, *name, entry->begin, covered, entry->begin);
    covered = entry->end;
    previous = name;
  }
  if (covered != data_size)
    fail("{}: the data section has {} bytes past the end of the last tensor{} (at byte {} of {})", path,
         data_size - covered, previous ? " '" + *previous + "'" : std::string(), covered, data_size);
}

std::vector<std::string> SafetensorsReader::names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, entry] : tensors_) names.push_back(name);
  return names;
}

const SafetensorsReader::Entry& SafetensorsReader::entry(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("{}: no tensor '{}' in this file", path(), name);
  return it->second;
}

Dtype SafetensorsReader::dtype(const std::string& name) const { return entry(name).dtype; }

const std::vector<std::int64_t>& SafetensorsReader::shape(const std::string& name) const {
  return entry(name).shape;
}

std::int64_t SafetensorsReader::numel(const std::string& name) const { return entry(name).numel; }

ByteSpan SafetensorsReader::bytes(const std::string& name) const {
  const Entry& e = entry(name);
  return {data_section_ + e.begin, static_cast<std::size_t>(e.end - e.begin)};
}

void SafetensorsReader::read_as_f32(const std::string& name, float* out, std::size_t count) const {
  const Entry& e = entry(name);
  if (!is_float_dtype(e.dtype))
    fail("{}: tensor '{}': dtype {} cannot be converted to F32 (expected F64, F32, F16 or BF16)", path(),
         name, dtype_name(e.dtype));
  if (count != static_cast<std::size_t>(e.numel))
    fail("{}: tensor '{}': holds {} elements, but {} were requested", path(), name, e.numel, count);
  // An empty tensor ([0, 768] is legal) has nothing to convert, and `out` may then be null (an
  // empty vector's data()), which memcpy must not be given even for zero bytes.
  if (count == 0) return;
  // memcpy per element: the mapped data need not be aligned to the element size.
  const std::uint8_t* src = data_section_ + e.begin;
  switch (e.dtype) {
    case Dtype::kF32:
      std::memcpy(out, src, count * sizeof(float));
      break;
    case Dtype::kF64:
      for (std::size_t i = 0; i < count; ++i) {
        double value;
        std::memcpy(&value, src + 8 * i, 8);
        out[i] = static_cast<float>(value);
      }
      break;
    case Dtype::kF16:
    case Dtype::kBF16: {
      const bool half = e.dtype == Dtype::kF16;
      for (std::size_t i = 0; i < count; ++i) {
        std::uint16_t bits;
        std::memcpy(&bits, src + 2 * i, 2);
        out[i] = half ? f32_from_f16(bits) : f32_from_bf16(bits);
      }
      break;
    }
    default:
      fail("internal error: unhandled float dtype {}", dtype_name(e.dtype));
  }
}

std::vector<float> SafetensorsReader::read_as_f32(const std::string& name) const {
  std::vector<float> values(static_cast<std::size_t>(numel(name)));
  read_as_f32(name, values.data(), values.size());
  return values;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorToWrite*> order;
  std::set<std::string> seen;
  for (const auto& tensor : tensors) {
    if (tensor.name == kMetadataKey)
      fail("{}: cannot write a tensor named '{}' (reserved)", path, tensor.name);
    if (!seen.insert(tensor.name).second) fail("{}: tensor '{}' given twice", path, tensor.name);
    std::uint64_t numel = 1;
    for (std::int64_t dim : tensor.shape) {
      if (dim < 0)
        fail("{}: tensor '{}': negative dimension in shape {}", path, tensor.name,
             format_shape(tensor.shape));
      numel *= static_cast<std::uint64_t>(dim);
    }
    const std::uint64_t expected = numel * dtype_size(tensor.dtype);
    if (tensor.bytes.size != expected)
      fail("{}: tensor '{}': {} bytes given, but shape {} of {} needs {}", path, tensor.name,
           tensor.bytes.size, format_shape(tensor.shape), dtype_name(tensor.dtype), expected);
    order.push_back(&tensor);
  }
  std::sort(order.begin(), order.end(), [](const TensorToWrite* a, const TensorToWrite* b) {
    const std::size_t size_a = dtype_size(a->dtype), size_b = dtype_size(b->dtype);
    if (size_a != size_b) return size_a > size_b;
    return a->name < b->name;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::uint64_t offset = 0;
  for (const TensorToWrite* tensor : order) {
    nlohmann::ordered_json entry;
    entry["dtype"] = dtype_name(tensor->dtype);
    entry["shape"] = tensor->shape;
    entry["data_offsets"] = {offset, offset + tensor->bytes.size};
    header[tensor->name] = std::move(entry);
    offset += tensor->bytes.size;
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');

  std::string prefix;
  append_u64_le(prefix, header_text.size());
  prefix += header_text;

  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("{}: cannot open for writing: {}", tmp, std::strerror(errno));
    out.write(prefix.data(), static_cast<std::streamsize>(prefix.size()));
    for (const TensorToWrite* tensor : order)
      out.write(reinterpret_cast<const char*>(tensor->bytes.data),
                static_cast<std::streamsize>(tensor->bytes.size));
    out.close();
    if (!out) fail("{}: write failed: {}", tmp, std::strerror(errno));
  });
}

}  // namespace lnfree::io
