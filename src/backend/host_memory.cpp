#include "backend/host_memory.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/byte_size.h"
#include "strata/error.h"

namespace strata {
namespace {

// Below this, a mapping's page rounding and system call cost more than they save.
constexpr size_t kMapThreshold = size_t{1} << 20;
constexpr size_t kPage = 4096;

}  // namespace

void* host_allocate(size_t bytes) {
  if (bytes < kMapThreshold) {
    // Page-aligned, like the mappings: direct I/O reads into any host buffer.
    void* data = std::aligned_alloc(kPage, (bytes + kPage - 1) / kPage * kPage);
    if (!data) throw Error("cannot allocate " + std::to_string(bytes) + " bytes of host memory");
    std::memset(data, 0, bytes);
    return data;
  }
  void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED)
    throw Error("cannot reserve " + format_bytes(static_cast<double>(bytes)) + " of host memory: " +
                    std::strerror(errno),
                "", "", "not enough RAM; lower the memory budget");
  // Huge pages are an optimisation: if the kernel declines, 4 KiB pages work.
  madvise(base, bytes, MADV_HUGEPAGE);
  return base;
}

void host_release(void* data, size_t bytes) {
  if (!data) return;
  if (bytes < kMapThreshold)
    std::free(data);
  else
    munmap(data, bytes);
}

}  // namespace strata
