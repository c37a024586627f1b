#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "io/io_test_support.h"
#include "util/error.h"

namespace lnfree::io {
namespace {

using testing::TempDir;

std::uint32_t bits_of(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return bits;
}

float float_of(std::uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

template <typename T>
ByteSpan span_of(const std::vector<T>& values) {
  return {reinterpret_cast<const std::uint8_t*>(values.data()), values.size() * sizeof(T)};
}

// 8-byte little-endian length, then the header text, then the data section.
std::string raw_file(const std::string& header, const std::string& data) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xFF));
  return out + header + data;
}

std::string raw_file_with_length(std::uint64_t length, const std::string& rest) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((length >> (8 * i)) & 0xFF));
  return out + rest;
}

// The message of the error that opening `path` raises; fails the test when there is none.
std::string open_error(const std::string& path) {
  try {
    SafetensorsReader reader(path);
  } catch (const Error& e) {
    std::printf("  error: %s\n", e.what());
    return e.what();
  }
  ADD_FAILURE() << path << " was accepted";
  return "";
}

void expect_contains(const std::string& message, const std::vector<std::string>& fragments) {
  for (const auto& fragment : fragments)
    EXPECT_NE(message.find(fragment), std::string::npos) << "'" << fragment << "' not in: " << message;
}

// Writes a file with the given header and data, and checks that opening it fails with a message
// that contains the path and every fragment.
void expect_refused(const std::string& header, const std::string& data,
                    const std::vector<std::string>& fragments) {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  testing::write_bytes(path, raw_file(header, data));
  auto message = open_error(path);
  expect_contains(message, fragments);
  expect_contains(message, {path});
}

// ---------------------------------------------------------------- round trips

TEST(Safetensors, F32RoundTripIsExactWithMetadataAndOtherDtypes) {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  const std::vector<float> weight = {1.5f,
                                     -0.0f,
                                     std::numeric_limits<float>::infinity(),
                                     1e-40f /* subnormal */,
                                     float_of(0x7FC12345) /* NaN with payload */,
                                     3.14159274f};
  const std::vector<float> scalar = {42.0f};
  const std::vector<float> empty;
  const std::vector<std::int64_t> ids = {-1, 0, 1LL << 40};
  write_safetensors(path,
                    {{"b.weight", Dtype::kF32, {2, 3}, span_of(weight)},
                     {"a", Dtype::kF32, {}, span_of(scalar)},
                     {"empty", Dtype::kF32, {0, 4}, span_of(empty)},
                     {"ids", Dtype::kI64, {3}, span_of(ids)}},
                    {{"format", "pt"}, {"note", "round trip"}});

  SafetensorsReader reader(path);
  EXPECT_EQ(reader.names(), (std::vector<std::string>{"a", "b.weight", "empty", "ids"}));
  EXPECT_EQ(reader.metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}, {"note", "round trip"}}));
  EXPECT_EQ(reader.dtype("b.weight"), Dtype::kF32);
  EXPECT_EQ(reader.dtype("ids"), Dtype::kI64);
  EXPECT_EQ(reader.shape("b.weight"), (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(reader.shape("a"), (std::vector<std::int64_t>{}));
  EXPECT_EQ(reader.shape("empty"), (std::vector<std::int64_t>{0, 4}));
  EXPECT_EQ(reader.numel("a"), 1);
  EXPECT_EQ(reader.numel("empty"), 0);
  EXPECT_EQ(reader.bytes("empty").size, 0u);

  const auto read_back = reader.read_as_f32("b.weight");
  ASSERT_EQ(read_back.size(), weight.size());
  for (std::size_t i = 0; i < weight.size(); ++i) EXPECT_EQ(bits_of(read_back[i]), bits_of(weight[i])) << i;
  EXPECT_EQ(reader.read_as_f32("a"), scalar);
  const ByteSpan id_bytes = reader.bytes("ids");
  ASSERT_EQ(id_bytes.size, 24u);
  EXPECT_EQ(std::memcmp(id_bytes.data, ids.data(), 24), 0);

  // The header is padded to a multiple of 8 and every tensor is aligned to its element size
  // (the file is mapped at a page boundary, so addresses show the file offsets' alignment).
  const std::string raw = read_file(path);
  std::uint64_t header_size = 0;
  std::memcpy(&header_size, raw.data(), 8);
  EXPECT_EQ(header_size % 8, 0u);
  EXPECT_EQ(raw[8], '{');
  for (const auto& name : reader.names())
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(reader.bytes(name).data) % dtype_size(reader.dtype(name)), 0u)
        << name;
}

TEST(Safetensors, F64ConvertsToTheNearestF32) {
  TempDir dir;
  const std::string path = dir.file("d.safetensors");
  const std::vector<double> values = {0.1, -1e-300, 1e30, 1.0 + 1e-12, 3.0};
  write_safetensors(path, {{"d", Dtype::kF64, {5}, span_of(values)}}, {});
  const auto read_back = SafetensorsReader(path).read_as_f32("d");
  ASSERT_EQ(read_back.size(), values.size());
  for (std::size_t i = 0; i < values.size(); ++i)
    EXPECT_EQ(bits_of(read_back[i]), bits_of(static_cast<float>(values[i]))) << i;
}

// Found by tests/fuzz/safetensors: read_as_f32 passed the empty vector's null data() to memcpy
// (undefined behaviour, reported by UBSan in build-asan/).
TEST(Safetensors, EmptyFloatTensorsReadAsNoValues) {
  TempDir dir;
  const std::string path = dir.file("empty.safetensors");
  const std::vector<float> none;
  write_safetensors(
      path, {{"f32", Dtype::kF32, {0, 4}, span_of(none)}, {"f16", Dtype::kF16, {0}, span_of(none)}}, {});
  const SafetensorsReader reader(path);
  EXPECT_TRUE(reader.read_as_f32("f32").empty());
  EXPECT_TRUE(reader.read_as_f32("f16").empty());
  reader.read_as_f32("f32", nullptr, 0);
}

// Random magnitudes between the bounds, both signs.
std::vector<float> random_values(std::size_t n, float min_magnitude, float max_magnitude, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> log_magnitude(std::log(min_magnitude), std::log(max_magnitude));
  std::vector<float> values(n);
  for (auto& v : values) v = std::exp(log_magnitude(rng)) * (rng() % 2 ? 1.0f : -1.0f);
  return values;
}

void check_half_round_trip(Dtype dtype, std::uint16_t (*encode)(float), double precision,
                           float max_magnitude) {
  TempDir dir;
  const std::string path = dir.file("h.safetensors");
  const auto values = random_values(10000, 1e-4f, max_magnitude, 7);
  std::vector<std::uint16_t> encoded(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) encoded[i] = encode(values[i]);
  write_safetensors(path, {{"x", dtype, {100, 100}, span_of(encoded)}}, {});

  SafetensorsReader reader(path);
  EXPECT_EQ(reader.dtype("x"), dtype);
  EXPECT_TRUE(reader.metadata().empty());
  ASSERT_EQ(reader.bytes("x").size, encoded.size() * 2);
  EXPECT_EQ(std::memcmp(reader.bytes("x").data, encoded.data(), encoded.size() * 2), 0);
  const auto decoded = reader.read_as_f32("x");
  double max_relative = 0;
  for (std::size_t i = 0; i < values.size(); ++i)
    max_relative =
        std::max(max_relative, std::abs(double(decoded[i]) - values[i]) / std::abs(double(values[i])));
  std::printf("  %s round trip of %zu values in [1e-4, %g]: max relative error %.3g (bound %.3g)\n",
              dtype_name(dtype), values.size(), max_magnitude, max_relative, precision);
  EXPECT_LE(max_relative, precision);
  EXPECT_GT(max_relative, precision / 4);  // the values really were rounded
}

TEST(Safetensors, F16RoundTripWithinHalfAnUlp) {
  check_half_round_trip(Dtype::kF16, f16_from_f32, 1.0 / 2048, 6e4f);
}

TEST(Safetensors, BF16RoundTripWithinHalfAnUlp) {
  check_half_round_trip(Dtype::kBF16, bf16_from_f32, 1.0 / 256, 1e30f);
}

// ---------------------------------------------------------------- conversions

TEST(SafetensorsConversion, EveryF16BitPatternSurvivesF32AndBack) {
  int nans = 0;
  for (std::uint32_t h = 0; h <= 0xFFFF; ++h) {
    const float f = f32_from_f16(static_cast<std::uint16_t>(h));
    const std::uint16_t back = f16_from_f32(f);
    if (std::isnan(f)) {
      ++nans;
      EXPECT_EQ(back, h | 0x0200) << h;  // payload kept, quiet bit set
    } else {
      EXPECT_EQ(back, h) << h;
    }
  }
  EXPECT_EQ(nans, 2 * 1023);
}

TEST(SafetensorsConversion, EveryBF16BitPatternSurvivesF32AndBack) {
  for (std::uint32_t h = 0; h <= 0xFFFF; ++h) {
    const float f = f32_from_bf16(static_cast<std::uint16_t>(h));
    EXPECT_EQ(bits_of(f), h << 16);
    const std::uint16_t back = bf16_from_f32(f);
    if (std::isnan(f))
      EXPECT_EQ(back, h | 0x0040) << h;
    else
      EXPECT_EQ(back, h) << h;
  }
}

TEST(SafetensorsConversion, F16KnownValuesAndTies) {
  EXPECT_EQ(f16_from_f32(1.0f), 0x3C00);
  EXPECT_EQ(f16_from_f32(-2.0f), 0xC000);
  EXPECT_EQ(f16_from_f32(-0.0f), 0x8000);
  EXPECT_EQ(f16_from_f32(65504.0f), 0x7BFF);
  EXPECT_EQ(f16_from_f32(65519.99f), 0x7BFF);
  EXPECT_EQ(f16_from_f32(65520.0f), 0x7C00);  // tie between 65504 and 2^16: even side is infinity
  EXPECT_EQ(f16_from_f32(1e10f), 0x7C00);
  EXPECT_EQ(f16_from_f32(-std::numeric_limits<float>::infinity()), 0xFC00);
  EXPECT_TRUE(std::isnan(f32_from_f16(f16_from_f32(std::nanf("")))));
  EXPECT_EQ(f16_from_f32(1.0f + std::ldexp(1.0f, -11)), 0x3C00);                   // tie -> even (down)
  EXPECT_EQ(f16_from_f32(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);               // tie -> even (up)
  EXPECT_EQ(f16_from_f32(std::ldexp(1.0f, -24)), 0x0001);                          // smallest subnormal
  EXPECT_EQ(f16_from_f32(std::ldexp(1.0f, -25)), 0x0000);                          // tie -> even zero
  EXPECT_EQ(f16_from_f32(3 * std::ldexp(1.0f, -25)), 0x0002);                      // tie -> even 2
  EXPECT_EQ(f16_from_f32(std::ldexp(1.0f, -14)), 0x0400);                          // smallest normal
  EXPECT_EQ(f16_from_f32(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25)), 0x0400);  // tie 0x3FF/0x400
  EXPECT_EQ(f32_from_f16(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f32_from_f16(0x7BFF), 65504.0f);
}

TEST(SafetensorsConversion, BF16KnownValuesAndTies) {
  EXPECT_EQ(bf16_from_f32(1.0f), 0x3F80);
  EXPECT_EQ(bf16_from_f32(1.0f + std::ldexp(1.0f, -8)), 0x3F80);        // tie -> even (down)
  EXPECT_EQ(bf16_from_f32(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);    // tie -> even (up)
  EXPECT_EQ(bf16_from_f32(std::numeric_limits<float>::max()), 0x7F80);  // nearer to 2^128 than to 0x7F7F
  EXPECT_EQ(bf16_from_f32(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(bf16_from_f32(float_of(0x7F800001)), 0x7FC0);  // signalling NaN with a low payload stays NaN
}

// Checks the rounding definition directly: the encoding is a nearest representable value, and on
// a tie the one with an even last bit. Candidates are the result and its two neighbours.
void check_nearest_even(std::uint16_t (*encode)(float), float (*decode)(std::uint16_t), float max_magnitude,
                        std::uint16_t max_finite) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<std::uint32_t> any_bits(0, 0xFFFFFFFF);
  int checked = 0;
  for (int i = 0; i < 200000; ++i) {
    const float x = float_of(any_bits(rng));
    if (!(std::abs(x) <= max_magnitude)) continue;  // skips NaN, inf and overflow
    const std::uint16_t h = encode(x);
    const std::uint16_t magnitude = h & 0x7FFF;
    ASSERT_LE(magnitude, max_finite) << x;
    const double error = std::abs(double(decode(h)) - x);
    for (int step : {-1, 1}) {
      const int neighbour = magnitude + step;
      if (neighbour < 0 || neighbour > max_finite) continue;
      const auto other = static_cast<std::uint16_t>((h & 0x8000) | neighbour);
      const double other_error = std::abs(double(decode(other)) - x);
      ASSERT_LE(error, other_error) << x;
      if (error == other_error) ASSERT_EQ(h & 1, 0) << x;  // tie: even
    }
    ++checked;
  }
  std::printf("  nearest-even rounding verified for %d random floats\n", checked);
  EXPECT_GT(checked, 1000);
}

TEST(SafetensorsConversion, F16IsNearestEvenForRandomFloats) {
  check_nearest_even(f16_from_f32, f32_from_f16, 65504.0f, 0x7BFF);
}

TEST(SafetensorsConversion, BF16IsNearestEvenForRandomFloats) {
  check_nearest_even(bf16_from_f32, f32_from_bf16, float_of(0x7F7F0000), 0x7F7F);
}

// ---------------------------------------------------------------- an independent reader

TEST(Safetensors, IndependentPythonReaderParsesOurFiles) {
  TempDir dir;
  const std::string path = dir.file("py.safetensors");
  // Edge cases for the rounding (ties, subnormals, overflow, signed zero, inf, NaN), then random.
  std::vector<float> values = {0.0f,
                               -0.0f,
                               1.0f,
                               1.0f + std::ldexp(1.0f, -11),
                               1.0f + 3 * std::ldexp(1.0f, -11),
                               1.0f + std::ldexp(1.0f, -8),
                               1.0f + 3 * std::ldexp(1.0f, -8),
                               65504.0f,
                               65520.0f,
                               7e4f,
                               std::ldexp(1.0f, -25),
                               3 * std::ldexp(1.0f, -25),
                               1e-40f,
                               std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity(),
                               std::numeric_limits<float>::quiet_NaN(),
                               std::numeric_limits<float>::max()};
  for (float v : random_values(3000, 1e-9f, 1e9f, 3)) values.push_back(v);
  std::vector<std::uint16_t> f16(values.size()), bf16(values.size());
  for (std::size_t i = 0; i < values.size(); ++i)
    f16[i] = f16_from_f32(values[i]), bf16[i] = bf16_from_f32(values[i]);
  const std::vector<std::int64_t> ids = {5, -7, 9};
  const std::vector<std::uint8_t> flags = {1, 0, 1};  // an odd byte count before aligned tensors
  const auto n = static_cast<std::int64_t>(values.size());
  write_safetensors(path,
                    {{"values.f32", Dtype::kF32, {n}, span_of(values)},
                     {"values.f16", Dtype::kF16, {n}, span_of(f16)},
                     {"values.bf16", Dtype::kBF16, {n}, span_of(bf16)},
                     {"ids", Dtype::kI64, {3, 1}, span_of(ids)},
                     {"flags", Dtype::kU8, {3}, span_of(flags)}},
                    {{"format", "pt"}});

  const auto dump = testing::run_independent_reader("dump " + path);
  ASSERT_FALSE(dump.is_null());
  EXPECT_EQ(dump["metadata"], (nlohmann::json{{"format", "pt"}}));
  EXPECT_EQ(dump["header_size"].get<std::uint64_t>() % 8, 0u);
  const auto& tensors = dump["tensors"];
  EXPECT_EQ(tensors.size(), 5u);
  EXPECT_EQ(tensors["values.f16"]["dtype"], "F16");
  EXPECT_EQ(tensors["values.bf16"]["dtype"], "BF16");
  EXPECT_EQ(tensors["ids"]["shape"], (nlohmann::json{3, 1}));
  EXPECT_EQ(tensors["flags"]["shape"], (nlohmann::json{3}));
  int mismatches = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    mismatches += tensors["values.f32"]["f32_bits"][i].get<std::uint32_t>() != bits_of(values[i]);
    // numpy decodes our F16 bits; the decoded values must equal ours (both are exact).
    const float ours = f32_from_f16(f16[i]);
    const std::uint32_t theirs = tensors["values.f16"]["f32_bits"][i].get<std::uint32_t>();
    mismatches += std::isnan(ours) ? !std::isnan(float_of(theirs)) : theirs != bits_of(ours);
    mismatches +=
        tensors["values.bf16"]["f32_bits"][i].get<std::uint32_t>() != bits_of(f32_from_bf16(bf16[i]));
  }
  EXPECT_EQ(mismatches, 0);

  // numpy's float16 and torch's bfloat16 rounding of the F32 values equal ours, bit for bit.
  const auto rounding = testing::run_independent_reader("rounding " + path);
  ASSERT_FALSE(rounding.is_null());
  std::printf("  independent rounding check: %d values, %d mismatches\n", rounding["checked"].get<int>(),
              rounding["mismatches"].get<int>());
  EXPECT_EQ(rounding["checked"].get<std::size_t>(), 2 * values.size());
  EXPECT_EQ(rounding["mismatches"].get<int>(), 0) << rounding["first_mismatches"].dump();
}

// ---------------------------------------------------------------- accessors and the writer

TEST(Safetensors, UnknownTensorNameIsAnErrorNamingFileAndTensor) {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  const std::vector<float> one = {1.0f};
  write_safetensors(path, {{"x", Dtype::kF32, {1}, span_of(one)}}, {});
  SafetensorsReader reader(path);
  EXPECT_FALSE(reader.contains("nope"));
  try {
    reader.shape("nope");
    FAIL() << "no error";
  } catch (const Error& e) {
    expect_contains(e.what(), {path, "'nope'"});
  }
}

TEST(Safetensors, ConvertingANonFloatTensorIsAnError) {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  const std::vector<std::int32_t> ids = {1, 2};
  write_safetensors(path, {{"ids", Dtype::kI32, {2}, span_of(ids)}}, {});
  SafetensorsReader reader(path);
  try {
    reader.read_as_f32("ids");
    FAIL() << "no error";
  } catch (const Error& e) {
    expect_contains(e.what(), {path, "'ids'", "I32"});
  }
}

void expect_write_refused(const std::vector<TensorToWrite>& tensors,
                          const std::vector<std::string>& fragments) {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  try {
    write_safetensors(path, tensors, {});
    ADD_FAILURE() << "write accepted";
  } catch (const Error& e) {
    std::printf("  error: %s\n", e.what());
    expect_contains(e.what(), fragments);
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "a refused write left a file behind";
}

TEST(SafetensorsWriter, RefusesByteCountNotMatchingShape) {
  const std::vector<float> three = {1, 2, 3};
  expect_write_refused({{"x", Dtype::kF32, {2, 2}, span_of(three)}}, {"'x'", "12 bytes", "16"});
}

TEST(SafetensorsWriter, RefusesDuplicateNames) {
  const std::vector<float> one = {1};
  expect_write_refused({{"x", Dtype::kF32, {1}, span_of(one)}, {"x", Dtype::kF32, {1}, span_of(one)}},
                       {"'x'", "twice"});
}

TEST(SafetensorsWriter, RefusesTheReservedMetadataName) {
  const std::vector<float> one = {1};
  expect_write_refused({{"__metadata__", Dtype::kF32, {1}, span_of(one)}}, {"'__metadata__'", "reserved"});
}

// ---------------------------------------------------------------- malformed files, one defect each

const std::string kGoodEntry = R"("x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
const std::string kEightBytes(8, '\0');

TEST(SafetensorsMalformed, ValidBaselineIsAccepted) {
  // The malformed cases below each change one thing of this file.
  TempDir dir;
  const std::string path = dir.file("good.safetensors");
  testing::write_bytes(path, raw_file("{" + kGoodEntry + "}", kEightBytes));
  SafetensorsReader reader(path);
  EXPECT_EQ(reader.names(), std::vector<std::string>{"x"});
}

TEST(SafetensorsMalformed, MissingFile) {
  auto message = open_error("/nonexistent/dir/model.safetensors");
  expect_contains(message, {"/nonexistent/dir/model.safetensors"});
}

TEST(SafetensorsMalformed, FileShorterThanTheHeaderLength) {
  TempDir dir;
  const std::string path = dir.file("short.safetensors");
  testing::write_bytes(path, std::string("\x10\x00\x00", 3));
  expect_contains(open_error(path), {path, "3 bytes", "8-byte header length"});
}

TEST(SafetensorsMalformed, HeaderLengthPastEndOfFile) {
  TempDir dir;
  const std::string path = dir.file("past.safetensors");
  testing::write_bytes(path, raw_file_with_length(1000, "{}"));
  expect_contains(open_error(path), {path, "1000", "past the end of the file"});
}

TEST(SafetensorsMalformed, HeaderLengthAbsurd) {
  TempDir dir;
  const std::string path = dir.file("absurd.safetensors");
  testing::write_bytes(path, raw_file_with_length(0xFFFFFFFFFFFFFFF0ull, "{}"));
  expect_contains(open_error(path), {path, "absurd"});
}

TEST(SafetensorsMalformed, ZeroHeaderLength) { expect_refused("", "", {"not valid JSON"}); }

TEST(SafetensorsMalformed, InvalidJson) { expect_refused(R"({"x":{"dtype":"F32",)", "", {"not valid JSON"}); }

TEST(SafetensorsMalformed, HeaderNotAnObject) {
  expect_refused("[1, 2]", "", {"must be a JSON object", "[1,2]"});
}

TEST(SafetensorsMalformed, TensorEntryNotAnObject) {
  expect_refused(R"({"x": [0, 8]})", kEightBytes, {"'x'", "expected an object"});
}

TEST(SafetensorsMalformed, MissingField) {
  expect_refused(R"({"x":{"dtype":"F32","shape":[2]}})", kEightBytes,
                 {"'x'", "missing field 'data_offsets'"});
}

TEST(SafetensorsMalformed, UnknownField) {
  expect_refused(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"stride":[1]}})", kEightBytes,
                 {"'x'", "unknown field 'stride'"});
}

TEST(SafetensorsMalformed, UnknownDtype) {
  expect_refused(R"({"x":{"dtype":"F24","shape":[2],"data_offsets":[0,8]}})", kEightBytes,
                 {"'x'", "unknown dtype \"F24\""});
}

TEST(SafetensorsMalformed, DtypeNotAString) {
  expect_refused(R"({"x":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", kEightBytes,
                 {"'x'", "unknown dtype 4"});
}

TEST(SafetensorsMalformed, ShapeNotAList) {
  expect_refused(R"({"x":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", kEightBytes,
                 {"'x'", "'shape'", "non-negative integers"});
}

TEST(SafetensorsMalformed, ShapeNegativeDimension) {
  expect_refused(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", kEightBytes,
                 {"'x'", "'shape'", "[-2]"});
}

TEST(SafetensorsMalformed, ShapeFractionalDimension) {
  expect_refused(R"({"x":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", kEightBytes,
                 {"'x'", "'shape'", "[2.0]"});
}

TEST(SafetensorsMalformed, ShapeProductOverflows) {
  expect_refused(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", kEightBytes,
                 {"'x'", "too large"});
}

TEST(SafetensorsMalformed, OffsetsNotAPair) {
  expect_refused(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}})", kEightBytes,
                 {"'x'", "'data_offsets'", "[begin, end]"});
}

TEST(SafetensorsMalformed, OffsetsNegative) {
  expect_refused(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", kEightBytes,
                 {"'x'", "'data_offsets'", "non-negative"});
}

TEST(SafetensorsMalformed, OffsetsReversed) {
  expect_refused(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", kEightBytes,
                 {"'x'", "begin 8 is after end 0"});
}

TEST(SafetensorsMalformed, OffsetsPastTheDataSection) {
  expect_refused(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", kEightBytes,
                 {"'x'", "[4, 12]", "past the data section (8 bytes)"});
}

TEST(SafetensorsMalformed, ByteSizeNotMatchingShape) {
  expect_refused(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", kEightBytes,
                 {"'x'", "hold 8 bytes", "needs 12"});
}

TEST(SafetensorsMalformed, OverlappingTensors) {
  expect_refused(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                 R"("y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                 kEightBytes, {"'y'", "overlap tensor 'x'"});
}

TEST(SafetensorsMalformed, GapBetweenTensors) {
  expect_refused(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                 R"("y":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                 std::string(12, '\0'), {"'y'", "unused bytes [4, 8)"});
}

TEST(SafetensorsMalformed, FirstTensorNotAtTheStart) {
  expect_refused(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", kEightBytes,
                 {"'x'", "unused bytes [0, 4)"});
}

TEST(SafetensorsMalformed, TrailingBytesAfterTheLastTensor) {
  expect_refused("{" + kGoodEntry + "}", kEightBytes + "tail",
                 {"4 bytes past the end of the last tensor 'x'"});
}

TEST(SafetensorsMalformed, DuplicateTensorName) {
  expect_refused(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                 R"("x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                 kEightBytes, {"key 'x' appears more than once"});
}

TEST(SafetensorsMalformed, MetadataNotAnObject) {
  expect_refused(R"({"__metadata__":"pt",)" + kGoodEntry + "}", kEightBytes,
                 {"'__metadata__'", "object of strings"});
}

TEST(SafetensorsMalformed, MetadataValueNotAString) {
  expect_refused(R"({"__metadata__":{"format":"pt","step":3},)" + kGoodEntry + "}", kEightBytes,
                 {"'__metadata__'", "entry 'step'", "expected a string"});
}

}  // namespace
}  // namespace lnfree::io
