// sim:N — a simulated accelerator, so every placement and streaming path is
// tested on machines without a GPU (DESIGN.md, "Devices and tiers"): its own
// memory pool with a hard capacity, explicit host<->device copies that may be
// throttled to a given bandwidth, and compute by the CPU kernels on its memory.
// Staging-slot fills run on a copier thread, as a GPU's copy engine runs
// them beside its kernels; since the compute is the host's own (synchronous),
// use_slot waits for the fill. The device also checks the slot protocol: a
// fill into a slot that a block is still reading is an internal error, so
// every streaming test on sim devices checks the weight store's ordering.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "backend/device.h"

namespace strata {

class SimDevice final : public Device {
 public:
  // copy_bytes_per_second: 0 copies at memory speed; otherwise each copy takes
  // at least bytes / rate seconds, like a bus of that speed.
  SimDevice(int ordinal, uint64_t capacity, double copy_bytes_per_second = 0);
  ~SimDevice() override;
  bool host_addressable() const override { return true; }
  void copy_in(void* device_dst, const void* host_src, size_t bytes) override;
  void copy_out(void* host_dst, const void* device_src, size_t bytes) override;
  void fill_slot(size_t slot, std::span<const HostCopy> copies) override;
  void use_slot(size_t slot) override;
  void release_slot(size_t slot) override;
  void finish_fill(size_t slot) override;

 protected:
  void* raw_allocate(size_t bytes) override;
  void raw_release(void* data, size_t bytes) override;

 private:
  struct Fill {
    size_t slot;
    std::vector<HostCopy> copies;
  };
  void throttle(size_t bytes, std::chrono::steady_clock::time_point started) const;
  void copier_loop();
  void grow_slots(size_t slot);  // with mutex_ held

  double copy_rate_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Fill> queue_;
  std::vector<uint64_t> fills_queued_, fills_done_;  // per slot
  std::vector<bool> slot_in_use_;                    // between use_slot and release_slot
  bool stop_ = false;
  std::thread copier_;  // started by the first fill
};

}  // namespace strata
