// Page-backed host memory for large buffers: anonymous mappings that ask for
// transparent huge pages, so streaming a weight matrix costs few TLB misses
// (a file mapping uses 4 KiB pages). Small buffers come from the C heap.
#pragma once

#include <cstddef>

namespace strata {

// Page-aligned (4 KiB), zero-filled memory. Throws strata::Error when the system
// is out of memory.
void* host_allocate(size_t bytes);
void host_release(void* data, size_t bytes);

}  // namespace strata
