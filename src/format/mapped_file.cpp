// Read-only whole-file memory maps. Checkpoint data is reached through these
// maps so that opening a model reads only headers, and the kernel's page cache
// (not our heap) holds weights that stay on the disk tier.
#include "format/mapped_file.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

#include "strata/error.h"

namespace strata {
namespace {

// Closes the descriptor on every path out of the constructor; the map keeps
// its own reference to the file, so the descriptor is not needed afterwards.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() { ::close(fd_); }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

[[noreturn]] void throw_errno(const std::string& what, const std::filesystem::path& path, int err) {
  const char* hint = err == ENOENT ? "does the file exist?" : err == EACCES ? "permissions?" : "";
  throw Error(what + ": " + std::strerror(err), path.string(), {}, hint);
}

}  // namespace

MappedFile::MappedFile(const std::filesystem::path& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_errno("cannot open", path, errno);
  FdGuard guard(fd);

  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno("cannot stat", path, errno);
  // Directories and devices open fine but cannot be mapped, or have no size.
  if (!S_ISREG(st.st_mode)) throw Error("not a regular file", path.string());
  if (st.st_size == 0) return;  // mmap of length 0 is an error; an empty span is the truth.

  size_ = static_cast<size_t>(st.st_size);
  void* addr = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  if (addr == MAP_FAILED) {
    size_ = 0;
    throw_errno("cannot memory-map", path, errno);
  }
  data_ = static_cast<const uint8_t*>(addr);
  // Note: if another process truncates the file while it is mapped, touching
  // the lost pages raises SIGBUS. Nothing portable prevents that; we validate
  // sizes at open time, which covers damaged files, not files changing under us.
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void release_mapped_pages(std::span<const uint8_t> range) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(range.data()) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(range.data()) + range.size()) / page * page;
  // Advice only: a failure costs memory, never correctness.
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace strata
