// A read-only memory map of a whole file (RAII, move-only).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>

namespace strata {

class MappedFile {
 public:
  // Maps the file read-only. Throws strata::Error naming the file if it cannot
  // be opened or mapped. An empty file maps to an empty span.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Unmaps the whole pages inside `range` (part of a MappedFile) from this
// process: they leave its resident set but stay in the page cache, and the
// next read faults them back in. For ranges read once, such as weights
// copied into RAM at load.
void release_mapped_pages(std::span<const uint8_t> range);

}  // namespace strata
