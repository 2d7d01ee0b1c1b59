// Host RAM for weights that stay resident: large anonymous mappings backed by
// transparent huge pages where the kernel allows, so streaming a matrix costs
// few TLB misses (a file mapping uses 4 KiB pages). Not copyable; frees on
// destruction. Thread-safety: allocate from one thread; reads are free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace strata {

class HostArena {
 public:
  HostArena() = default;
  ~HostArena();
  HostArena(const HostArena&) = delete;
  HostArena& operator=(const HostArena&) = delete;

  // Reserves room for `bytes` more before allocating, so one mapping holds
  // them all. Optional.
  void reserve(size_t bytes);
  // 64-byte aligned memory for `bytes`; throws strata::Error when the system
  // is out of memory.
  void* allocate(size_t bytes);

 private:
  struct Region {
    uint8_t* base = nullptr;
    size_t size = 0;
    size_t used = 0;
  };
  void map_region(size_t bytes);
  std::vector<Region> regions_;
};

}  // namespace strata
