// Reading byte ranges of a file into memory without the page cache: large
// aligned reads with O_DIRECT, so streaming a model bigger than RAM neither
// evicts what is resident nor grows the page cache (which counts against a
// container's memory limit). Where the file system refuses O_DIRECT (tmpfs),
// reads are buffered and the pages are dropped right after (POSIX_FADV_DONTNEED).
// Thread-safety: read() may be called from any thread; it uses pread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>

namespace strata {

class DirectReader {
 public:
  // The alignment O_DIRECT asks of offsets, lengths and buffers.
  static constexpr size_t kAlign = 4096;

  // Opens the file. Throws strata::Error naming it when it cannot be opened.
  explicit DirectReader(const std::filesystem::path& path);
  ~DirectReader();
  DirectReader(const DirectReader&) = delete;
  DirectReader& operator=(const DirectReader&) = delete;

  // Bytes from `offset` to `offset + size` land at dst + lead(offset); dst
  // must be kAlign-aligned with span_bytes(offset, size) bytes of room.
  // Throws strata::Error naming the file when the read fails or comes up
  // short (a file truncated or gone bad since it was opened).
  void read(uint64_t offset, uint64_t size, uint8_t* dst) const;

  static size_t lead(uint64_t offset) { return static_cast<size_t>(offset % kAlign); }
  static size_t span_bytes(uint64_t offset, uint64_t size) {
    return (lead(offset) + size + kAlign - 1) / kAlign * kAlign;
  }
  bool direct() const { return direct_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  bool direct_ = false;
};

}  // namespace strata
