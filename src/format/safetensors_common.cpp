// Shared helpers for reading and writing safetensors: strict JSON parsing,
// overflow-checked sizes, message formatting and robust writes.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unistd.h>

#include "format/safetensors.h"
#include "format/safetensors_internal.h"
#include "strata/error.h"

namespace strata {

int64_t TensorInfo::numel() const {
  // Validated tensors never overflow; a hand-made TensorInfo with a bad shape
  // reports 0 elements rather than invoking undefined behaviour.
  return detail::checked_numel(shape).value_or(0);
}

namespace detail {
namespace {

using nlohmann::json;

// Our files nest at most three levels (header → entry → shape). Anything much
// deeper is garbage, and refusing it early bounds the parser's work.
constexpr size_t kMaxJsonDepth = 16;

// Builds the DOM from nlohmann's SAX events, refusing duplicate keys (the
// stock parser keeps the last value, so a tensor could be silently shadowed)
// and deep nesting. A parser callback could see duplicates too, but nlohmann's
// callback parser rescans the parent object at every object end, which is
// quadratic in the tensor count: minutes for a 100k-tensor header.
class StrictDomBuilder {
 public:
  explicit StrictDomBuilder(const JsonSource& source) : source_(source) {}

  json take() { return std::move(root_); }

  bool null() { return put(nullptr) != nullptr; }
  bool boolean(bool value) { return put(value) != nullptr; }
  bool number_integer(json::number_integer_t value) { return put(value) != nullptr; }
  bool number_unsigned(json::number_unsigned_t value) { return put(value) != nullptr; }
  bool number_float(json::number_float_t value, const json::string_t&) { return put(value) != nullptr; }
  bool string(json::string_t& value) { return put(std::move(value)) != nullptr; }
  bool binary(json::binary_t& value) { return put(json::binary(std::move(value))) != nullptr; }

  bool start_object(size_t) { return open(json::object()); }
  bool start_array(size_t) { return open(json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(json::string_t& key) {
    // Open objects are std::maps, so the lookup is logarithmic.
    if (stack_.back()->contains(key))
      throw Error("duplicate key \"" + printable(key) + "\" in " + source_.what, source_.file,
                  stack_.size() == 1 ? printable(key, 200) : std::string{}, source_.hint);
    key_ = std::move(key);
    return true;
  }

  bool parse_error(size_t, const std::string&, const nlohmann::json::exception& e) {
    // Syntax errors, invalid UTF-8 and number overflow (out_of_range.406) all
    // land here. The library's text quotes bytes from the file, so it is made
    // printable, and its "[json.exception.parse_error.101] " prefix is dropped.
    std::string_view reason = e.what();
    if (const size_t end = reason.find("] "); reason.starts_with("[json.exception") && end != reason.npos)
      reason.remove_prefix(end + 2);
    throw Error(source_.what + " is not valid JSON: " + printable(reason, 200), source_.file, {},
                source_.hint);
  }

 private:
  // Places a value in the open container (or as the root) and returns where it
  // went. The address stays valid while the value is the innermost open
  // container, because nothing else is added to its parent until it closes.
  json* put(json value) {
    if (stack_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    json& parent = *stack_.back();
    if (parent.is_array()) {
      parent.push_back(std::move(value));
      return &parent.back();
    }
    return &(parent[key_] = std::move(value));
  }

  bool open(json container) {
    if (stack_.size() >= kMaxJsonDepth)
      throw Error(source_.what + " nests deeper than " + std::to_string(kMaxJsonDepth) + " levels",
                  source_.file, {}, source_.hint);
    stack_.push_back(put(std::move(container)));
    return true;
  }

  bool close() {
    stack_.pop_back();
    return true;
  }

  const JsonSource& source_;
  json root_;
  std::vector<json*> stack_;
  std::string key_;
};

}  // namespace

nlohmann::json parse_json_strict(std::string_view text, const JsonSource& source) {
  StrictDomBuilder builder(source);
  // strict: trailing bytes after the value (other than whitespace) are an error.
  json::sax_parse(text.begin(), text.end(), &builder, json::input_format_t::json, /*strict=*/true);
  return builder.take();
}

std::optional<int64_t> checked_numel(std::span<const int64_t> shape) {
  int64_t product = 1;
  for (int64_t dim : shape) {
    if (dim < 0) return std::nullopt;
    if (__builtin_mul_overflow(product, dim, &product)) return std::nullopt;
  }
  return product;
}

std::optional<uint64_t> checked_nbytes(std::span<const int64_t> shape, DType dtype) {
  const std::optional<int64_t> numel = checked_numel(shape);
  if (!numel) return std::nullopt;
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(*numel), static_cast<uint64_t>(dtype_size(dtype)),
                             &bytes))
    return std::nullopt;
  return bytes;
}

std::string printable(std::string_view text, size_t max_chars) {
  std::string out;
  out.reserve(std::min(text.size(), max_chars) + 3);
  for (char c : text.substr(0, max_chars)) {
    const auto byte = static_cast<unsigned char>(c);
    out += (byte < 0x20 || byte >= 0x7f) ? '?' : c;
  }
  if (text.size() > max_chars) out += "...";
  return out;
}

void write_all(int fd, std::span<const uint8_t> bytes, const std::filesystem::path& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(std::string("write failed: ") + std::strerror(errno), path.string(), {},
                  "disk full or read-only?");
    }
    // A zero-byte write of a non-empty buffer would otherwise loop forever.
    if (n == 0) throw Error("write made no progress", path.string(), {}, "disk full?");
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
}

}  // namespace detail

std::string shape_string(std::span<const int64_t> shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

}  // namespace strata
