// This process's memory as the kernel counts it, for the figures the commands
// print: anonymous memory (what strata allocates: weights in RAM, KV cache,
// activations) apart from file-backed pages (the memory-mapped checkpoint,
// which the kernel may drop and re-read at will).
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

namespace strata::cli {

struct ProcessMemory {
  uint64_t rss_anon = 0;  // RssAnon of /proc/self/status
  uint64_t rss_file = 0;  // RssFile
  uint64_t vm_hwm = 0;    // VmHWM: the peak of the whole resident set
};
ProcessMemory read_process_memory();

// Samples RssAnon every `period_ms` (reading /proc costs ~20 µs, far below timing noise) on a thread of its own and keeps the
// largest value: the kernel records no peak of anonymous memory alone.
// Allocations living shorter than the period can be missed; strata's large
// ones (weights, KV cache, workspaces) live as long as the model.
class PeakAnonSampler {
 public:
  explicit PeakAnonSampler(int period_ms = 10);
  ~PeakAnonSampler();
  PeakAnonSampler(const PeakAnonSampler&) = delete;
  PeakAnonSampler& operator=(const PeakAnonSampler&) = delete;
  uint64_t peak() const;

 private:
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> peak_{0};
  std::thread thread_;
};

}  // namespace strata::cli
