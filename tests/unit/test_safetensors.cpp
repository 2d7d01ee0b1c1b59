// Safetensors writing and reading: round trips, layout, and the writer's checks.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "format/safetensors.h"
#include "strata/error.h"
#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

using test::read_file;

// Bytes of any trivially copyable values, for building tensors.
template <typename T>
std::vector<uint8_t> bytes_of(const std::vector<T>& values) {
  std::vector<uint8_t> out(values.size() * sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

std::span<const uint8_t> span_of(const std::vector<uint8_t>& v) { return {v.data(), v.size()}; }

struct Sample {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

// One tensor of each interesting kind: half types, integers, a 0-d scalar and
// a zero-size tensor (which occupies no bytes but still has a place).
std::vector<Sample> samples() {
  return {
      {"f32.matrix", DType::F32, {2, 3}, bytes_of(std::vector<float>{1, -2, 3.5f, 0, 1e-30f, -0.0f})},
      {"bf16.vector", DType::BF16, {4}, bytes_of(std::vector<uint16_t>{0x3f80, 0xc000, 0x7f80, 0x0001})},
      {"f16.column", DType::F16, {3, 1}, bytes_of(std::vector<uint16_t>{0x3c00, 0x7bff, 0x8001})},
      {"i64.ids", DType::I64, {2}, bytes_of(std::vector<int64_t>{INT64_MIN, INT64_MAX})},
      {"f64.scalar", DType::F64, {}, bytes_of(std::vector<double>{3.25})},
      {"f32.empty", DType::F32, {0, 5}, {}},
      {"u8.bytes", DType::U8, {3}, {1, 2, 255}},
      {"bool.mask", DType::BOOL, {2, 2}, {1, 0, 0, 1}},
  };
}

std::vector<TensorToWrite> to_write(const std::vector<Sample>& s) {
  std::vector<TensorToWrite> out;
  for (const Sample& t : s) out.push_back({t.name, t.dtype, t.shape, span_of(t.data)});
  return out;
}

TEST(SafetensorsRoundTrip, EveryDtypeAndShapeComesBackByteIdentical) {
  TempDir tmp;
  const fs::path path = tmp.path() / "t.safetensors";
  const std::vector<Sample> written = samples();
  const std::map<std::string, std::string> metadata{{"format", "pt"}, {"note", "ünïcode"}};
  write_safetensors(path, to_write(written), metadata);

  const SafetensorsFile file(path);
  EXPECT_EQ(file.metadata(), metadata);
  ASSERT_EQ(file.tensors().size(), written.size());
  // Data is laid out in declaration order, so file order equals it.
  for (size_t i = 0; i < written.size(); ++i) {
    SCOPED_TRACE(written[i].name);
    const TensorInfo& info = file.tensors()[i];
    EXPECT_EQ(info.name, written[i].name);
    EXPECT_EQ(info.dtype, written[i].dtype);
    EXPECT_EQ(info.shape, written[i].shape);
    EXPECT_EQ(info.nbytes, written[i].data.size());
    EXPECT_EQ(info.file_index, 0u);
    const std::span<const uint8_t> data = file.data(info);
    EXPECT_EQ(std::vector<uint8_t>(data.begin(), data.end()), written[i].data);
  }
  EXPECT_EQ(file.tensors()[4].numel(), 1);  // a 0-d tensor holds one element
  EXPECT_EQ(file.tensors()[5].numel(), 0);
}

TEST(SafetensorsRoundTrip, LayoutMatchesTheReferenceWriter) {
  TempDir tmp;
  const fs::path path = tmp.path() / "t.safetensors";
  const std::vector<Sample> written = samples();
  write_safetensors(path, to_write(written), {{"format", "pt"}});

  const std::string bytes = read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[static_cast<size_t>(i)]);
  EXPECT_EQ(n % 8, 0u) << "header must be padded so the data area is 8-byte aligned";
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.rfind(R"({"__metadata__":{"format":"pt"},"f32.matrix":{"dtype":"F32","shape":[2,3],)"
                         R"("data_offsets":[0,24]})",
                         0),
            0u)
      << header;
  EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}')) << "padding is spaces only";

  // Offsets are contiguous, starting at 0, ending at the end of the file.
  const nlohmann::ordered_json parsed = nlohmann::ordered_json::parse(header);
  uint64_t expected_begin = 0;
  for (const auto& [name, entry] : parsed.items()) {
    if (name == "__metadata__") continue;
    EXPECT_EQ(entry["data_offsets"][0].get<uint64_t>(), expected_begin) << name;
    expected_begin = entry["data_offsets"][1].get<uint64_t>();
  }
  EXPECT_EQ(8 + n + expected_begin, bytes.size());
}

TEST(SafetensorsRoundTrip, NoMetadataMeansNoMetadataKey) {
  TempDir tmp;
  const fs::path path = tmp.path() / "t.safetensors";
  write_safetensors(path, to_write(samples()));
  EXPECT_EQ(read_file(path).find("__metadata__"), std::string::npos);
  EXPECT_TRUE(SafetensorsFile(path).metadata().empty());
}

TEST(SafetensorsRoundTrip, EmptyFileOfTensorsIsValid) {
  TempDir tmp;
  const fs::path path = tmp.path() / "t.safetensors";
  write_safetensors(path, {});
  EXPECT_EQ(fs::file_size(path), 16u);  // 8-byte length + "{}" padded to 8
  EXPECT_TRUE(SafetensorsFile(path).tensors().empty());
}

TEST(SafetensorsWriter, StreamsPiecesAndReportsFileSize) {
  TempDir tmp;
  const fs::path path = tmp.path() / "s.safetensors";
  std::vector<float> a(1000), b(333);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i);
  for (size_t i = 0; i < b.size(); ++i) b[i] = -static_cast<float>(i);
  const std::vector<uint8_t> ab = bytes_of(a), bb = bytes_of(b);
  {
    SafetensorsWriter writer(path, {{"a", DType::F32, {10, 100}}, {"b", DType::F32, {333}}});
    // Pieces need not line up with tensor boundaries.
    std::vector<uint8_t> all = ab;
    all.insert(all.end(), bb.begin(), bb.end());
    writer.append(std::span(all).subspan(0, 7));
    writer.append(std::span(all).subspan(7, 3990));
    writer.append(std::span(all).subspan(3997));
    writer.finish();
    EXPECT_EQ(writer.file_size(), fs::file_size(path));
  }
  const SafetensorsFile file(path);
  const auto da = file.data(file.tensors()[0]);
  const auto db = file.data(file.tensors()[1]);
  EXPECT_EQ(std::vector<uint8_t>(da.begin(), da.end()), ab);
  EXPECT_EQ(std::vector<uint8_t>(db.begin(), db.end()), bb);
}

TEST(SafetensorsWriter, ShortDataFailsAndLeavesNoFile) {
  TempDir tmp;
  const fs::path path = tmp.path() / "s.safetensors";
  {
    SafetensorsWriter writer(path, {{"a", DType::F32, {4}}});
    writer.append(std::vector<uint8_t>(8));
    EXPECT_THROW(writer.finish(), Error);
  }
  // An unfinished file would look like a truncated download; it is removed.
  EXPECT_FALSE(fs::exists(path));
}

TEST(SafetensorsWriter, TooMuchDataIsRefused) {
  TempDir tmp;
  SafetensorsWriter writer(tmp.path() / "s.safetensors", {{"a", DType::F16, {2}}});
  EXPECT_THROW(writer.append(std::vector<uint8_t>(5)), Error);
}

TEST(SafetensorsWriter, InvalidDeclarationsAreRefusedBeforeWriting) {
  TempDir tmp;
  const fs::path path = tmp.path() / "s.safetensors";
  using D = SafetensorsWriter::Declared;
  EXPECT_THROW(SafetensorsWriter(path, {D{"a", DType::F32, {2}}, D{"a", DType::F32, {2}}}), Error);
  EXPECT_THROW(SafetensorsWriter(path, {D{"__metadata__", DType::F32, {2}}}), Error);
  EXPECT_THROW(SafetensorsWriter(path, {D{"a", DType::F32, {-2}}}), Error);
  EXPECT_THROW(SafetensorsWriter(path, {D{"a", DType::F32, {INT64_MAX, 2}}}), Error);
  EXPECT_THROW(SafetensorsWriter(path, {D{"bad\xff", DType::F32, {2}}}), Error);
  EXPECT_FALSE(fs::exists(path));

  // write_safetensors checks each buffer against its shape.
  const std::vector<uint8_t> six(6);
  try {
    write_safetensors(path, {{"w", DType::F32, {2}, span_of(six)}});
    FAIL() << "expected strata::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'w'"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST(SafetensorsWriter, UnwritableDirectoryIsAnError) {
  try {
    write_safetensors("/nonexistent-dir/x.safetensors", {});
    FAIL() << "expected strata::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x.safetensors"), std::string::npos);
  }
}

TEST(SafetensorsWriter, LargeTensorsAndManySmallOnes) {
  // Exercises both write paths of write_safetensors: big buffers go straight
  // to write(), small ones are gathered first.
  TempDir tmp;
  const fs::path path = tmp.path() / "big.safetensors";
  std::vector<Sample> s;
  std::vector<uint8_t> big(24 << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 131 + 7);
  s.push_back({"big", DType::U8, {static_cast<int64_t>(big.size())}, big});
  for (int i = 0; i < 300; ++i)
    s.push_back({"small." + std::to_string(i), DType::U8, {100 * i + 1},
                 std::vector<uint8_t>(static_cast<size_t>(100 * i + 1), static_cast<uint8_t>(i))});
  s.push_back({"big2", DType::U8, {static_cast<int64_t>(big.size())}, big});
  write_safetensors(path, to_write(s));

  const SafetensorsFile file(path);
  ASSERT_EQ(file.tensors().size(), s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const auto d = file.data(file.tensors()[i]);
    ASSERT_TRUE(std::equal(d.begin(), d.end(), s[i].data.begin(), s[i].data.end())) << s[i].name;
  }
}

// Writes length field + header + data_bytes of filler, as a hand-made file.
fs::path write_raw(const fs::path& dir, const std::string& header, size_t data_bytes) {
  const fs::path path = dir / "raw.safetensors";
  std::string out(8, '\0');
  for (size_t i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  out += header;
  out.append(data_bytes, '\x02');
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(out.data(), static_cast<std::streamsize>(out.size()));
  return path;
}

std::string error_of(const fs::path& path) {
  try {
    SafetensorsFile file(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(SafetensorsReader, GapsAndTrailingBytesAreAllowed) {
  // The spec does not require the data to be packed; only overlaps are harmful.
  TempDir tmp;
  const fs::path path = write_raw(tmp.path(),
                                  R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]},)"
                                  R"("a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                                  R"("z0":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
                                  R"("z1":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]}})",
                                  40);
  const SafetensorsFile file(path);
  ASSERT_EQ(file.tensors().size(), 4u);
  EXPECT_EQ(file.tensors().front().name, "a");  // file order is offset order
  EXPECT_EQ(file.tensors().back().name, "b");
  const uint64_t data_start = fs::file_size(path) - 40;
  EXPECT_EQ(file.tensors().back().file_offset, data_start + 16);
}

TEST(SafetensorsReader, NumbersThatAreNotSmallUnsignedIntegersAreRefused) {
  TempDir tmp;
  const auto header = [](const std::string& shape, const std::string& offsets) {
    return R"({"t":{"dtype":"U8","shape":)" + shape + R"(,"data_offsets":)" + offsets + "}}";
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {header("[18446744073709551616]", "[0,4]"), "\"shape\" holds"},  // 2^64 overflows to a double
      {header("[9223372036854775808]", "[0,4]"), "\"shape\" holds"},   // 2^63 does not fit int64
      {header("[1e400]", "[0,4]"), "not valid JSON"},                   // overflows even a double
      {header("[4.0]", "[0,4]"), "\"shape\" holds"},
      {header("[true]", "[0,4]"), "\"shape\" holds"},
      {header("[4]", "[0,-4]"), "\"data_offsets\" must be"},
      {header("[4]", "[0,18446744073709551615]"), "run past the end"},
      {header("[4]", "[0,4,8]"), "\"data_offsets\" must be"},
      {header("[4]", "{}"), "\"data_offsets\" must be"},
      {header("[2305843009213693952,8]", "[0,4]"), "too many elements"},
      {header("[4611686018427387903]", "[0,4]"), "needs"},  // a valid count, but not 4 bytes
      {R"({"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}} trailing)", "not valid JSON"},
      {R"({"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4],"dtype":"F32"}})", "duplicate key"},
      {std::string(20, '[') + std::string(20, ']'), "nests deeper"},
  };
  for (const auto& [text, expected] : cases) {
    const std::string what = error_of(write_raw(tmp.path(), text, 4));
    EXPECT_NE(what.find(expected), std::string::npos) << text << "\n  -> " << what;
    EXPECT_NE(what.find("raw.safetensors"), std::string::npos) << what;
  }
}

TEST(SafetensorsMappedFile, MapsEmptyMissingAndDirectories) {
  TempDir tmp;
  const fs::path empty = tmp.path() / "empty";
  std::ofstream(empty).close();
  MappedFile m(empty);
  EXPECT_EQ(m.size(), 0u);
  EXPECT_TRUE(m.bytes().empty());

  try {
    MappedFile missing(tmp.path() / "nope");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("nope"), std::string::npos) << e.what();
  }
  EXPECT_THROW(MappedFile{tmp.path()}, Error);
}

TEST(SafetensorsMappedFile, MovesKeepTheMapping) {
  TempDir tmp;
  const fs::path path = tmp.path() / "f";
  std::ofstream(path) << "hello";
  MappedFile a(path);
  MappedFile b(std::move(a));
  EXPECT_EQ(b.size(), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.bytes().data()), b.size()), "hello");
  MappedFile c(path);
  c = std::move(b);
  EXPECT_EQ(c.size(), 5u);
  EXPECT_EQ(c.path(), path);
}

}  // namespace
}  // namespace strata
