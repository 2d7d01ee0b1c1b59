// Wall time for the figures the library and the tools report (load, prompt
// and decode times, bandwidths) and for the simulated devices' throttled copies.
#pragma once

#include <chrono>

namespace strata {

// Seconds from `start` to now, on the steady clock.
inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace strata
