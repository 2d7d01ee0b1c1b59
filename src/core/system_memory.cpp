#include "core/system_memory.h"

#include <fstream>
#include <string>

namespace strata {

uint64_t available_ram_bytes() {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("MemAvailable:", 0) == 0) return std::stoull(line.substr(13)) * 1024;
  }
  return 0;
}

}  // namespace strata
