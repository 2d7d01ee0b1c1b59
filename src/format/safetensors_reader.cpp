// Opening and validating one safetensors file.
//
// Layout (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON, then the data area. Every number in the
// header is checked against the mapped file before a TensorInfo is produced,
// so later code can slice the map without further checks.
#include <algorithm>

#include "format/safetensors.h"
#include "format/safetensors_internal.h"
#include "strata/error.h"

namespace strata {
namespace {

using nlohmann::json;

constexpr const char* kTruncated = "truncated download?";
constexpr const char* kNotSafetensors = "not a safetensors file?";
constexpr const char* kCorrupt = "corrupt or hand-edited header?";

// Carries the file name into every error so helpers need not repeat it.
struct HeaderContext {
  std::string file;
  uint64_t data_size = 0;  // bytes after the header
  uint64_t data_start = 0;  // 8 + N

  [[noreturn]] void fail(const std::string& message, const std::string& tensor = {},
                         const std::string& hint = kCorrupt) const {
    // Tensor names come from the file; keep them printable on one line.
    throw Error(message, file, detail::printable(tensor, 200), hint);
  }
};

uint64_t read_le_u64(std::span<const uint8_t> bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[static_cast<size_t>(i)];
  return value;
}

// Splits the file into header text and data area, checking the length field.
std::string_view header_text(std::span<const uint8_t> bytes, HeaderContext& ctx) {
  if (bytes.empty()) ctx.fail("file is empty", {}, kTruncated);
  if (bytes.size() < 8)
    ctx.fail("file is only " + std::to_string(bytes.size()) +
                 " bytes; a safetensors file starts with an 8-byte header length",
             {}, kTruncated);
  const uint64_t n = read_le_u64(bytes);
  const uint64_t room = bytes.size() - 8;
  if (n > detail::kMaxHeaderBytes)
    ctx.fail("header length " + std::to_string(n) + " is implausibly large (limit " +
                 std::to_string(detail::kMaxHeaderBytes) + ")",
             {}, kNotSafetensors);
  if (n > room)
    ctx.fail("header length " + std::to_string(n) + " runs past the end of the file (" +
                 std::to_string(bytes.size()) + " bytes)",
             {}, kTruncated);
  if (n < 2) ctx.fail("header length " + std::to_string(n) + " is too short for a JSON object", {},
                      kNotSafetensors);
  ctx.data_start = 8 + n;
  ctx.data_size = room - n;
  return {reinterpret_cast<const char*>(bytes.data() + 8), static_cast<size_t>(n)};
}

std::map<std::string, std::string> parse_metadata(const json& value, const HeaderContext& ctx) {
  if (!value.is_object()) ctx.fail("\"__metadata__\" must be an object mapping strings to strings");
  std::map<std::string, std::string> out;
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string())
      ctx.fail("\"__metadata__\" value for \"" + detail::printable(key) +
               "\" is not a string (the format allows only string values)");
    out.emplace(key, item.get<std::string>());
  }
  return out;
}

DType parse_entry_dtype(const json& entry, const std::string& name, const HeaderContext& ctx) {
  const auto it = entry.find("dtype");
  if (it == entry.end() || !it->is_string()) ctx.fail("missing or non-string \"dtype\"", name);
  const auto& text = it->get_ref<const std::string&>();
  const std::optional<DType> dtype = parse_dtype(text);
  if (!dtype)
    ctx.fail("unknown dtype \"" + detail::printable(text) + "\"", name,
             "supported: F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL");
  return *dtype;
}

// A JSON number is accepted as a count only when it is an unsigned integer:
// negatives, fractions and values that overflowed into doubles are refused.
std::optional<uint64_t> as_count(const json& value) {
  if (!value.is_number_unsigned()) return std::nullopt;
  return value.get<uint64_t>();
}

std::vector<int64_t> parse_entry_shape(const json& entry, const std::string& name,
                                       const HeaderContext& ctx) {
  const auto it = entry.find("shape");
  if (it == entry.end() || !it->is_array())
    ctx.fail("missing \"shape\" or it is not an array", name);
  std::vector<int64_t> shape;
  shape.reserve(it->size());
  for (const json& dim : *it) {
    const std::optional<uint64_t> value = as_count(dim);
    if (!value || *value > static_cast<uint64_t>(INT64_MAX))
      ctx.fail("\"shape\" holds " + detail::printable(dim.dump()) +
                   ", not a non-negative integer dimension",
               name);
    shape.push_back(static_cast<int64_t>(*value));
  }
  return shape;
}

// "[begin, end]". Built with append() rather than a chain of operator+ on a
// temporary, which trips GCC 12's false -Wrestrict warning (GCC bug 105329).
std::string range_string(uint64_t begin, uint64_t end) {
  std::string out = "[";
  out.append(std::to_string(begin)).append(", ").append(std::to_string(end)).append("]");
  return out;
}

std::pair<uint64_t, uint64_t> parse_entry_offsets(const json& entry, const std::string& name,
                                                  const HeaderContext& ctx) {
  const auto it = entry.find("data_offsets");
  const bool is_pair = it != entry.end() && it->is_array() && it->size() == 2;
  const std::optional<uint64_t> begin = is_pair ? as_count((*it)[0]) : std::nullopt;
  const std::optional<uint64_t> end = is_pair ? as_count((*it)[1]) : std::nullopt;
  if (!begin || !end)
    ctx.fail("\"data_offsets\" must be two non-negative integers [begin, end]", name);
  const std::string range = range_string(*begin, *end);
  if (*begin > *end) ctx.fail("data_offsets " + range + " are reversed (begin > end)", name);
  if (*end > ctx.data_size)
    ctx.fail("data_offsets " + range + " run past the end of the data area (" +
                 std::to_string(ctx.data_size) + " bytes)",
             name, kTruncated);
  return {*begin, *end};
}

TensorInfo parse_entry(const std::string& name, const json& entry, const HeaderContext& ctx) {
  if (!entry.is_object()) ctx.fail("header entry is not an object", name);
  TensorInfo info;
  info.name = name;
  info.dtype = parse_entry_dtype(entry, name, ctx);
  info.shape = parse_entry_shape(entry, name, ctx);
  const auto [begin, end] = parse_entry_offsets(entry, name, ctx);
  const std::optional<uint64_t> expected = detail::checked_nbytes(info.shape, info.dtype);
  if (!expected)
    ctx.fail("shape " + shape_string(info.shape) + " has too many elements", name);
  if (*expected != end - begin)
    ctx.fail("shape " + shape_string(info.shape) + " x " +
                 std::string(dtype_name(info.dtype)) + " needs " + std::to_string(*expected) +
                 " bytes but data_offsets span " + std::to_string(end - begin),
             name);
  info.file_index = 0;
  info.file_offset = ctx.data_start + begin;  // cannot overflow: end <= data_size
  info.nbytes = end - begin;
  return info;
}

// Sorts by offset and refuses overlaps. Gaps are allowed: the spec does not
// forbid them and they do no harm, though the reference writer never makes any.
void sort_and_check_overlaps(std::vector<TensorInfo>& tensors, const HeaderContext& ctx) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.file_offset != b.file_offset ? a.file_offset < b.file_offset : a.nbytes < b.nbytes;
  });
  for (size_t i = 1; i < tensors.size(); ++i) {
    const TensorInfo& prev = tensors[i - 1];
    const TensorInfo& cur = tensors[i];
    if (prev.file_offset + prev.nbytes > cur.file_offset)
      ctx.fail("data overlaps tensor '" + detail::printable(prev.name, 200) + "'", cur.name);
  }
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : file_(path) {
  HeaderContext ctx{path.string()};
  const std::string_view text = header_text(file_.bytes(), ctx);
  const json header = detail::parse_json_strict(text, {ctx.file, "header", kNotSafetensors});
  if (!header.is_object()) ctx.fail("header is not a JSON object", {}, kNotSafetensors);

  tensors_.reserve(header.size());
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__")
      metadata_ = parse_metadata(entry, ctx);
    else
      tensors_.push_back(parse_entry(name, entry, ctx));
  }
  sort_and_check_overlaps(tensors_, ctx);
}

std::span<const uint8_t> SafetensorsFile::data(const TensorInfo& info) const {
  const std::span<const uint8_t> bytes = file_.bytes();
  // Infos from this file always pass; the check guards against one from elsewhere.
  if (info.file_offset > bytes.size() || info.nbytes > bytes.size() - info.file_offset)
    throw Error("tensor range lies outside the file", path().string(), info.name,
                "TensorInfo from another file?");
  return bytes.subspan(static_cast<size_t>(info.file_offset), static_cast<size_t>(info.nbytes));
}

}  // namespace strata
