// Measures how fast this machine's CPU threads can read RAM, so that
// benchmarks can state the memory-bandwidth bound of a decode step beside the
// measured time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/thread_pool.h"

namespace strata::cpu {

struct BandwidthResult {
  double best_bytes_per_second = 0;
  double mean_bytes_per_second = 0;
  size_t buffer_bytes = 0;
  int repetitions = 0;
};

// Reads a buffer of `bytes` (far larger than the caches) with every pool
// thread, `repetitions` times after one warm-up pass.
BandwidthResult measure_read_bandwidth(ThreadPool& pool, size_t bytes, int repetitions);

// Reads the given memory ranges (e.g. a model's resident weights) with every
// pool thread. Physical placement makes the same machine read one buffer at
// 35 GB/s and another at 65 GB/s, so a decode step's bound is best measured on
// the very bytes it reads.
BandwidthResult measure_read_bandwidth(ThreadPool& pool, const std::vector<std::span<const uint8_t>>& ranges,
                                       int repetitions);

}  // namespace strata::cpu
