#include "runtime/host_arena.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "strata/error.h"

namespace strata {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kMinRegion = size_t{64} << 20;

size_t round_up(size_t value, size_t to) { return (value + to - 1) / to * to; }

}  // namespace

HostArena::~HostArena() {
  for (const Region& r : regions_) munmap(r.base, r.size);
}

void HostArena::map_region(size_t bytes) {
  const size_t size = round_up(std::max(bytes, kMinRegion), kHugePage);
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED)
    throw Error("cannot reserve " + std::to_string(size >> 20) + " MiB of host memory: " + std::strerror(errno), "", "",
                "not enough RAM; lower the memory budget");
  // Huge pages are an optimisation: if the kernel declines, 4 KiB pages work.
  madvise(base, size, MADV_HUGEPAGE);
  regions_.push_back(Region{static_cast<uint8_t*>(base), size, 0});
}

void HostArena::reserve(size_t bytes) {
  if (!regions_.empty() && regions_.back().size - regions_.back().used >= bytes) return;
  map_region(bytes);
}

void* HostArena::allocate(size_t bytes) {
  bytes = round_up(std::max<size_t>(bytes, 1), 64);
  if (regions_.empty() || regions_.back().size - regions_.back().used < bytes) map_region(bytes);
  Region& r = regions_.back();
  void* out = r.base + r.used;
  r.used += bytes;
  return out;
}

}  // namespace strata
