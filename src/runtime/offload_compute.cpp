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

namespace {

// A matrix bigger than the caches, of the dtype the offloaded weights have,
// multiplied by `rows` rows of activations.
class ProductProbe {
 public:
  ProductProbe(DType dtype, uint64_t bytes)
      : dtype_(dtype),
        rows_(static_cast<int64_t>(bytes) / (kCols * static_cast<int64_t>(dtype_size(dtype)))),
        bytes_(static_cast<size_t>(rows_ * kCols) * dtype_size(dtype)),
        weights_(static_cast<uint8_t*>(host_allocate(bytes_))) {
    std::memset(weights_, 0x3c, bytes_);  // real pages holding small finite values in every dtype
  }
  ~ProductProbe() { host_release(weights_, bytes_); }
  ProductProbe(const ProductProbe&) = delete;
  ProductProbe& operator=(const ProductProbe&) = delete;

  // Weight bytes per second, the best of kRepetitions.
  double rate(ThreadPool& pool, int64_t rows) const {
    std::vector<float> x(static_cast<size_t>(rows * kCols), 0.5f), out(static_cast<size_t>(rows * rows_));
    const MatmulOutput job[] = {{MatrixView{dtype_, weights_, rows_, kCols}, nullptr, out.data()}};
    double best = 0;
    for (int r = 0; r < kRepetitions; ++r) {
      const auto start = std::chrono::steady_clock::now();
      cpu::matmul(pool, x.data(), static_cast<size_t>(rows), job);
      best = std::max(best, bytes_ / seconds_since(start));
    }
    return best;
  }

 private:
  static constexpr int64_t kCols = 4096;
  DType dtype_;
  int64_t rows_;
  size_t bytes_;
  uint8_t* weights_;
};

}  // namespace

OffloadRates measure_offload_rates(Device& accelerator, ThreadPool& pool, DType dtype, int64_t rows) {
  OffloadRates rates;
  rates.copy_bytes_per_second = measure_copy_in(accelerator, uint64_t{64} << 20, kRepetitions);
  rates.cpu_bytes_per_second = ProductProbe(dtype, uint64_t{128} << 20).rate(pool, rows);
  return rates;
}

int64_t local_tokens_from(std::span<const RateAtRows> rates, double copy_bytes_per_second) {
  int64_t most = -1;
  for (const RateAtRows& r : rates) {
    if (r.cpu_bytes_per_second <= copy_bytes_per_second) break;
    most = r.rows;
  }
  return most;
}

ExpertComputeChoice measure_expert_compute(Device& accelerator, ThreadPool& pool, DType dtype) {
  constexpr int64_t kMostRows = 256;
  const double copy = measure_copy_in(accelerator, uint64_t{64} << 20, kRepetitions);
  const ProductProbe probe(dtype, uint64_t{64} << 20);
  std::vector<RateAtRows> rates;
  for (int64_t rows = 1; rows <= kMostRows; rows *= 2) {
    rates.push_back({rows, probe.rate(pool, rows)});
    if (rates.back().cpu_bytes_per_second <= copy) break;
  }
  ExpertComputeChoice choice;
  choice.local_tokens = local_tokens_from(rates, copy);
  char text[240];
  if (choice.local_tokens < 0)
    std::snprintf(text, sizeof text, "copied to %s (copies %.1f GB/s, CPU products %.1f GB/s at 1 token)",
                  accelerator.name().c_str(), copy / 1e9, rates.front().cpu_bytes_per_second / 1e9);
  else
    std::snprintf(text, sizeof text,
                  "computed by the CPU when routed to at most %lld tokens, else copied to %s (copies %.1f GB/s, "
                  "CPU products %.1f GB/s at 1 token, %.1f GB/s at %lld)",
                  static_cast<long long>(choice.local_tokens), accelerator.name().c_str(), copy / 1e9,
                  rates.front().cpu_bytes_per_second / 1e9, rates.back().cpu_bytes_per_second / 1e9,
                  static_cast<long long>(rates.back().rows));
  choice.text = text;
  return choice;
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
