#include "io_bandwidth.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>

#include "backend/host_memory.h"
#include "core/clock.h"
#include "format/direct_reader.h"

namespace strata::cli {

double measure_direct_read(const std::vector<WeightStore::DiskRange>& ranges, uint64_t limit) {
  constexpr uint64_t kRequest = uint64_t{64} << 20;
  // Merge ranges that continue each other, so requests are as large as the disk allows.
  std::vector<WeightStore::DiskRange> merged;
  for (const auto& r : ranges) {
    if (!merged.empty() && merged.back().path == r.path && merged.back().offset + merged.back().size == r.offset)
      merged.back().size += r.size;
    else
      merged.push_back(r);
  }
  const size_t room = DirectReader::span_bytes(DirectReader::kAlign - 1, kRequest);
  auto* buffer = static_cast<uint8_t*>(host_allocate(room));
  std::map<std::filesystem::path, std::unique_ptr<DirectReader>> readers;
  uint64_t done = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const auto& r : merged) {
    auto& reader = readers[r.path];
    if (!reader) reader = std::make_unique<DirectReader>(r.path);
    for (uint64_t at = 0; at < r.size && done < limit; at += kRequest) {
      const uint64_t n = std::min(kRequest, r.size - at);
      reader->read(r.offset + at, n, buffer);
      done += n;
    }
  }
  const double seconds = seconds_since(start);
  host_release(buffer, room);
  return done > 0 && seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
}

}  // namespace strata::cli
