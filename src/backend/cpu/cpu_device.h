// The host as a device: RAM, with the allocation counters every device keeps.
#pragma once

#include "backend/device.h"

namespace strata {

class CpuDevice final : public Device {
 public:
  // capacity: a hard limit on what strata allocates here (kUnlimited: none).
  explicit CpuDevice(uint64_t capacity = kUnlimited) : Device("cpu", -1, capacity) {}
  bool host_addressable() const override { return true; }
  void copy_in(void* device_dst, const void* host_src, size_t bytes) override;
  void copy_out(void* host_dst, const void* device_src, size_t bytes) override;

 protected:
  void* raw_allocate(size_t bytes) override;
  void raw_release(void* data, size_t bytes) override;
};

}  // namespace strata
