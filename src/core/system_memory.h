// The machine's memory as the kernel reports it (this process's own use is
// tools/process_memory.h).
#pragma once

#include <cstdint>

namespace strata {

// Bytes of RAM the kernel says are available now (MemAvailable of
// /proc/meminfo); 0 when it cannot be read.
uint64_t available_ram_bytes();

}  // namespace strata
