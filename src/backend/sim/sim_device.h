// sim:N — a simulated accelerator, so every placement and streaming path is
// tested on machines without a GPU (DESIGN.md, "Devices and tiers"): its own
// memory pool with a hard capacity, explicit host<->device copies that may be
// throttled to a given bandwidth, and compute by the CPU kernels on its memory.
#pragma once

#include "backend/device.h"

namespace strata {

class SimDevice final : public Device {
 public:
  // copy_bytes_per_second: 0 copies at memory speed; otherwise each copy takes
  // at least bytes / rate seconds, like a bus of that speed.
  SimDevice(int ordinal, uint64_t capacity, double copy_bytes_per_second = 0);
  bool host_addressable() const override { return true; }
  void copy_in(void* device_dst, const void* host_src, size_t bytes) override;
  void copy_out(void* host_dst, const void* device_src, size_t bytes) override;

 protected:
  void* raw_allocate(size_t bytes) override;
  void raw_release(void* data, size_t bytes) override;

 private:
  void throttle(size_t bytes, double started) const;
  double copy_rate_;
};

}  // namespace strata
