#include "backend/cpu/memory_bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/clock.h"

namespace strata::cpu {
namespace {

// Sums 64-bit words with eight independent accumulators so that loads, not
// the add chain, limit the speed. The result is kept so the reads happen.
uint64_t sum_words(const uint64_t* data, size_t n) {
  uint64_t acc[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += data[i + static_cast<size_t>(j)];
  for (; i < n; ++i) acc[0] += data[i];
  uint64_t total = 0;
  for (const uint64_t a : acc) total += a;
  return total;
}

}  // namespace

BandwidthResult measure_read_bandwidth(ThreadPool& pool, size_t bytes, int repetitions) {
  const size_t words = bytes / sizeof(uint64_t);
  std::unique_ptr<uint64_t[]> buffer(new uint64_t[words]);
  // Each thread touches its own part first, so pages sit near the thread that reads them.
  pool.parallel_for(words, 4096, [&](size_t begin, size_t end, int) {
    for (size_t i = begin; i < end; ++i) buffer[i] = i;
  });
  const std::span<const uint8_t> all(reinterpret_cast<const uint8_t*>(buffer.get()), words * sizeof(uint64_t));
  return measure_read_bandwidth(pool, {all}, repetitions);
}

BandwidthResult measure_read_bandwidth(ThreadPool& pool, const std::vector<std::span<const uint8_t>>& ranges,
                                       int repetitions) {
  // Whole 64-bit words of each range, split evenly over the threads.
  std::vector<std::span<const uint64_t>> words;
  size_t total_words = 0;
  for (const auto& r : ranges) {
    const auto* begin = reinterpret_cast<const uint64_t*>((reinterpret_cast<uintptr_t>(r.data()) + 7) & ~uintptr_t{7});
    const auto* end = reinterpret_cast<const uint64_t*>(reinterpret_cast<uintptr_t>(r.data() + r.size()) & ~uintptr_t{7});
    if (begin >= end) continue;
    words.emplace_back(begin, static_cast<size_t>(end - begin));
    total_words += words.back().size();
  }
  std::atomic<uint64_t> sink{0};
  auto pass = [&] {
    const auto start = std::chrono::steady_clock::now();
    pool.parallel_for(total_words, 4096, [&](size_t begin, size_t end, int) {
      uint64_t sum = 0;
      size_t offset = 0;
      for (const auto& w : words) {
        const size_t lo = std::max(begin, offset), hi = std::min(end, offset + w.size());
        if (lo < hi) sum += sum_words(w.data() + (lo - offset), hi - lo);
        offset += w.size();
      }
      sink.fetch_add(sum, std::memory_order_relaxed);
    });
    return seconds_since(start);
  };
  pass();  // warm-up
  BandwidthResult result;
  result.buffer_bytes = total_words * sizeof(uint64_t);
  result.repetitions = repetitions;
  double total_seconds = 0;
  for (int r = 0; r < repetitions; ++r) {
    const double seconds = pass();
    total_seconds += seconds;
    result.best_bytes_per_second = std::max(result.best_bytes_per_second, static_cast<double>(result.buffer_bytes) / seconds);
  }
  result.mean_bytes_per_second = static_cast<double>(result.buffer_bytes) * repetitions / total_seconds;
  return result;
}

}  // namespace strata::cpu
