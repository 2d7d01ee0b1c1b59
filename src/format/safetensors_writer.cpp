// Writing safetensors files, in the layout the reference implementation
// writes: "__metadata__" first, tensors in the order given, data packed in the
// same order with no gaps, header padded with spaces to a multiple of 8 so the
// data area starts 8-byte aligned.
//
// Speed comes from few, large write() calls: the caller's buffers are written
// directly (no copy) and only small tensors are gathered first. No fsync: the
// files are caches and conversions that can be made again, and syncing would
// cost far more than the write.
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <set>
#include <unistd.h>
#include <utility>

#include "format/safetensors.h"
#include "format/safetensors_internal.h"
#include "strata/error.h"

namespace strata {
namespace {

// Tensors below this size are gathered into one buffer before writing, so a
// file of many small tensors (norms, biases) still costs few system calls.
constexpr size_t kGatherBelow = 1 << 20;
constexpr size_t kGatherBuffer = 8 << 20;

[[noreturn]] void fail(const std::string& message, const std::filesystem::path& path,
                       const std::string& tensor = {}) {
  throw Error(message, path.string(), tensor, "bug in the caller: declared tensors are invalid");
}

// JSON text for a value; nlohmann does the escaping and refuses strings that
// are not UTF-8 (so would every reader).
std::string dump_utf8(const nlohmann::json& value, const std::filesystem::path& path) {
  try {
    return value.dump();
  } catch (const nlohmann::json::exception&) {
    fail("a tensor name or metadata string is not valid UTF-8", path);
  }
}

// Builds the padded header text and sums the data bytes it declares. The text
// is assembled by hand because nlohmann's ordered_json looks keys up linearly,
// which makes a header of n tensors cost O(n^2): a minute for 200k tensors.
std::string build_header(const std::vector<SafetensorsWriter::Declared>& tensors,
                         const std::map<std::string, std::string>& metadata,
                         const std::filesystem::path& path, uint64_t& data_bytes) {
  std::string text = "{";
  // Every piece is append()ed: chains of operator+ on temporaries trip GCC
  // 12's false -Wrestrict warning (GCC bug 105329).
  if (!metadata.empty()) text.append("\"__metadata__\":").append(dump_utf8(metadata, path));
  std::set<std::string_view> names;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (t.name == "__metadata__") fail("\"__metadata__\" is reserved, not a tensor name", path, t.name);
    if (!names.insert(t.name).second) fail("tensor declared twice", path, t.name);
    const std::optional<uint64_t> nbytes = detail::checked_nbytes(t.shape, t.dtype);
    if (!nbytes) fail("shape " + shape_string(t.shape) + " is negative or too large", path, t.name);
    uint64_t end = 0;
    if (__builtin_add_overflow(offset, *nbytes, &end)) fail("total size overflows", path, t.name);
    if (text.size() > 1) text += ',';
    // The same spelling as the reference writer: no spaces, shape as a list.
    text.append(dump_utf8(t.name, path)).append(":{\"dtype\":\"").append(dtype_name(t.dtype));
    text.append("\",\"shape\":[");
    for (size_t i = 0; i < t.shape.size(); ++i) text.append(i ? "," : "").append(std::to_string(t.shape[i]));
    text.append("],\"data_offsets\":[").append(std::to_string(offset)).append(",");
    text.append(std::to_string(end)).append("]}");
    offset = end;
  }
  text += '}';
  data_bytes = offset;
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

// The 8-byte little-endian header length followed by the header, in one buffer
// so the file starts with a single write.
std::vector<uint8_t> header_block(const std::string& header) {
  std::vector<uint8_t> block(8 + header.size());
  uint64_t n = header.size();
  for (size_t i = 0; i < 8; ++i, n >>= 8) block[i] = static_cast<uint8_t>(n & 0xff);
  std::memcpy(block.data() + 8, header.data(), header.size());
  return block;
}

// Removes a file we created but did not complete, so a half-written file is
// never mistaken for a checkpoint later (the reader would reject it anyway).
void discard(int fd, const std::filesystem::path& path) {
  if (fd >= 0) ::close(fd);
  ::unlink(path.c_str());
}

}  // namespace

SafetensorsWriter::SafetensorsWriter(const std::filesystem::path& path, std::vector<Declared> tensors,
                                     const std::map<std::string, std::string>& metadata)
    : path_(path) {
  const std::vector<uint8_t> block = header_block(build_header(tensors, metadata, path, expected_data_bytes_));
  if (__builtin_add_overflow(static_cast<uint64_t>(block.size()), expected_data_bytes_, &file_size_))
    fail("total size overflows", path);

  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw Error(std::string("cannot create: ") + std::strerror(errno), path.string(), {},
                "does the directory exist and is it writable?");
  try {
    detail::write_all(fd_, block, path_);
  } catch (...) {
    // The destructor does not run for a constructor that throws.
    discard(fd_, path_);
    throw;
  }
}

SafetensorsWriter::~SafetensorsWriter() {
  // Still open means finish() never succeeded: the file is incomplete.
  if (fd_ >= 0) discard(fd_, path_);
}

void SafetensorsWriter::append(std::span<const uint8_t> bytes) {
  if (fd_ < 0) throw Error("append after finish()", path_.string(), {}, "bug in the caller");
  if (bytes.size() > expected_data_bytes_ - written_data_bytes_)
    throw Error("appended " + std::to_string(written_data_bytes_ + bytes.size()) +
                    " data bytes but the header declares " + std::to_string(expected_data_bytes_),
                path_.string(), {}, "bug in the caller: data does not match the declared shapes");
  detail::write_all(fd_, bytes, path_);
  written_data_bytes_ += bytes.size();
}

void SafetensorsWriter::finish() {
  if (fd_ < 0) throw Error("finish() called twice", path_.string(), {}, "bug in the caller");
  if (written_data_bytes_ != expected_data_bytes_)
    throw Error("only " + std::to_string(written_data_bytes_) + " of " +
                    std::to_string(expected_data_bytes_) + " declared data bytes were appended",
                path_.string(), {}, "bug in the caller: data does not match the declared shapes");
  const int fd = std::exchange(fd_, -1);
  // close() is where some file systems (NFS) report a failed write.
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(path_.c_str());
    throw Error(std::string("close failed: ") + std::strerror(err), path_.string(), {},
                "disk full?");
  }
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsWriter::Declared> declared;
  declared.reserve(tensors.size());
  for (const TensorToWrite& t : tensors) {
    // Checked up front so a wrong buffer fails before the file is touched.
    const std::optional<uint64_t> nbytes = detail::checked_nbytes(t.shape, t.dtype);
    if (nbytes && *nbytes != t.data.size())
      fail("data holds " + std::to_string(t.data.size()) + " bytes but shape " +
               shape_string(t.shape) + " x " + std::string(dtype_name(t.dtype)) + " needs " +
               std::to_string(*nbytes),
           path, t.name);
    declared.push_back({t.name, t.dtype, t.shape});
  }
  SafetensorsWriter writer(path, std::move(declared), metadata);

  std::vector<uint8_t> gather;
  const auto flush = [&] {
    writer.append(gather);
    gather.clear();
  };
  for (const TensorToWrite& t : tensors) {
    if (t.data.size() >= kGatherBelow) {
      flush();
      writer.append(t.data);
      continue;
    }
    if (gather.size() + t.data.size() > kGatherBuffer) flush();
    if (gather.capacity() == 0) gather.reserve(kGatherBuffer);
    gather.insert(gather.end(), t.data.begin(), t.data.end());
  }
  flush();
  writer.finish();
}

}  // namespace strata
