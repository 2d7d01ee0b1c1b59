// Helpers shared by the safetensors reader, writer and shard index. Private to
// src/format: nothing outside this folder includes it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "strata/dtype.h"

namespace strata::detail {

// The reference implementation refuses headers above 100 MB; a larger length
// field means the file is not a safetensors file (or is corrupt), and we must
// not try to parse or allocate for it.
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// What a parse is for, so its errors can name the file and carry a fitting hint.
struct JsonSource {
  std::string file;  // rendered path, for strata::Error
  std::string what;  // "header", "index", ... used in messages
  std::string hint;  // hint for malformed JSON
};

// Parses JSON text, rejecting malformed input, duplicate keys in any object
// (nlohmann would silently keep the last one, so a tensor could be shadowed)
// and nesting deeper than any file we read needs. Throws strata::Error.
nlohmann::json parse_json_strict(std::string_view text, const JsonSource& source);

// Product of dims, or nullopt when a dim is negative or the product does not
// fit in int64 (the TensorInfo::numel() type).
std::optional<int64_t> checked_numel(std::span<const int64_t> shape);

// numel x dtype_size, or nullopt on overflow or a bad shape.
std::optional<uint64_t> checked_nbytes(std::span<const int64_t> shape, DType dtype);

// Makes text from a file safe to embed in a one-line error: control and
// non-ASCII bytes become '?', and long text is cut.
std::string printable(std::string_view text, size_t max_chars = 120);

// Writes all of bytes to fd, retrying short writes and EINTR. Throws
// strata::Error naming path with strerror on failure.
void write_all(int fd, std::span<const uint8_t> bytes, const std::filesystem::path& path);

}  // namespace strata::detail
