// Where modules kept in host RAM or on disk run when a GPU is present
// (DESIGN.md, "Devices and tiers"): streamed, their weights copied to the
// GPU before each use, or local, computed by the CPU where they lie. At small
// batch the CPU reads its RAM about as fast as PCIe moves it, so local can
// win; at large batch the CPU is compute-bound and streaming wins (llama.cpp
// copies weights only for batches of 32 and more). `auto` measures both
// rates at start-up, for this machine and the run's batch, and picks the
// faster. The offloaded blocks of a Llama-family model are alike (decoder
// layers), so the choice per block is the same for each and is made once.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "backend/device.h"
#include "core/thread_pool.h"
#include "strata/dtype.h"

namespace strata {

enum class OffloadCompute { automatic, stream, local };

// "auto", "stream" or "local"; throws strata::Error for anything else.
OffloadCompute parse_offload_compute(std::string_view text);

struct OffloadRates {
  double copy_bytes_per_second = 0;  // host -> accelerator, from page-locked memory
  double cpu_bytes_per_second = 0;   // weight bytes the CPU's matmul consumes at the run's batch
};

// Copies a host buffer to `device` repeatedly through its copy_in, from
// memory the device pins if it pins any (as the weight store's host tiers
// are); bytes per second of the best of `repetitions`. Uses at most `bytes`
// of the device's free room.
double measure_copy_in(Device& device, uint64_t bytes, int repetitions);

// Measures both rates now (about 0.1 s): copies of a 64 MiB page-locked
// buffer to `accelerator`, and CPU products of a 128 MiB `dtype` matrix with
// `rows` rows of activations on `pool`.
OffloadRates measure_offload_rates(Device& accelerator, ThreadPool& pool, DType dtype, int64_t rows);

// True when computing a block on the CPU costs less than copying it.
inline bool local_is_faster(const OffloadRates& rates) {
  return rates.cpu_bytes_per_second > rates.copy_bytes_per_second;
}

// "streamed to cuda:0: copies 24.1 GB/s, CPU 15.2 GB/s at batch 1".
std::string describe_offload_choice(bool local, const std::string& accelerator, const OffloadRates& rates,
                                    int64_t rows);

// Routed experts of a layer on an accelerator that lie in RAM (or are read
// into it) either run on the CPU there or are copied over, one decision per
// expert and step: the CPU when few tokens route to it (its product reads
// the weights once at memory speed), the copy when many do (the CPU turns
// compute-bound, and the copy stays in the accelerator's cache).
// local_tokens: the most tokens routed to one expert for which the CPU
// computes it; -1 copies every expert, kAlwaysLocal none.
inline constexpr int64_t kAlwaysLocal = INT64_MAX;

// The CPU's product rate (weight bytes per second) at each row count.
struct RateAtRows {
  int64_t rows;
  double cpu_bytes_per_second;
};

// The largest row count, of `rates` in increasing rows, up to which the CPU
// beats copies at copy_bytes_per_second; -1 when it loses at the first.
int64_t local_tokens_from(std::span<const RateAtRows> rates, double copy_bytes_per_second);

struct ExpertComputeChoice {
  int64_t local_tokens = -1;
  std::string text;  // what was measured and chosen, for the start line
};

// Measures copies to `accelerator` and CPU products of `dtype` weights at 1,
// 2, 4, ... 256 rows (stopping once the CPU is slower), about 0.1 s.
ExpertComputeChoice measure_expert_compute(Device& accelerator, ThreadPool& pool, DType dtype);

}  // namespace strata
