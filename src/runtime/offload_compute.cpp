#include "runtime/offload_compute.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/host_memory.h"
#include "core/clock.h"
#include "strata/error.h"

namespace strata {
namespace {

constexpr int kRepetitions = 3;

}  // namespace

double measure_copy_in(Device& device, uint64_t bytes, int repetitions) {
  const uint64_t room = device.capacity() == Device::kUnlimited ? bytes : device.capacity() - device.in_use();
  const size_t size = static_cast<size_t>(std::min(bytes, room) / 4096 * 4096);
  if (size == 0) return 0;
  DeviceBuffer target(device, size, "the copy-bandwidth measurement");
  auto* source = static_cast<uint8_t*>(host_allocate(size));
  std::memset(source, 1, size);  // touched, so the copies read real pages
  // As the weight store does for the host tier and the read slots. A
  // failure needs no word here: the rate measured shows it.
  std::string failure;
  const bool pinned = device.pin_host(source, size, failure);
  double best = 0;
  for (int r = 0; r < repetitions; ++r) {
    const auto start = std::chrono::steady_clock::now();
    device.copy_in(target.data(), source, size);
    best = std::max(best, static_cast<double>(size) / seconds_since(start));
  }
  if (pinned) device.unpin_host(source);
  host_release(source, size);
  return best;
}

OffloadCompute parse_offload_compute(std::string_view text) {
  if (text == "auto" || text.empty()) return OffloadCompute::automatic;
  if (text == "stream") return OffloadCompute::stream;
  if (text == "local") return OffloadCompute::local;
  throw Error("--offload-compute must be auto, stream or local, not '" + std::string(text) + "'");
}

OffloadRates measure_offload_rates(Device& accelerator, ThreadPool& pool, DType dtype, int64_t rows) {
  OffloadRates rates;
  rates.copy_bytes_per_second = measure_copy_in(accelerator, uint64_t{64} << 20, kRepetitions);
  {
    // A matrix bigger than the caches, of the dtype the offloaded weights have.
    constexpr int64_t kCols = 4096;
    const int64_t weight_rows = (int64_t{128} << 20) / (kCols * static_cast<int64_t>(dtype_size(dtype)));
    const size_t weight_bytes = static_cast<size_t>(weight_rows * kCols) * dtype_size(dtype);
    auto* weights = static_cast<uint8_t*>(host_allocate(weight_bytes));
    std::memset(weights, 0x3c, weight_bytes);  // real pages holding small finite values in every dtype
    std::vector<float> x(static_cast<size_t>(rows * kCols), 0.5f), out(static_cast<size_t>(rows * weight_rows));
    const MatmulOutput job[] = {{MatrixView{dtype, weights, weight_rows, kCols}, nullptr, out.data()}};
    for (int r = 0; r < kRepetitions; ++r) {
      const auto start = std::chrono::steady_clock::now();
      cpu::matmul(pool, x.data(), static_cast<size_t>(rows), job);
      rates.cpu_bytes_per_second = std::max(rates.cpu_bytes_per_second, weight_bytes / seconds_since(start));
    }
    host_release(weights, weight_bytes);
  }
  return rates;
}

std::string describe_offload_choice(bool local, const std::string& accelerator, const OffloadRates& rates,
                                    int64_t rows) {
  char text[200];
  std::snprintf(text, sizeof text, "%s: copies to %s %.1f GB/s, CPU products %.1f GB/s of weights at batch %lld",
                local ? "computed by the CPU" : ("streamed to " + accelerator).c_str(), accelerator.c_str(),
                rates.copy_bytes_per_second / 1e9, rates.cpu_bytes_per_second / 1e9, static_cast<long long>(rows));
  return text;
}

}  // namespace strata
