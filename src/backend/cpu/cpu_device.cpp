#include "backend/cpu/cpu_device.h"

#include <cstring>

#include "backend/host_memory.h"

namespace strata {

void CpuDevice::copy_in(void* device_dst, const void* host_src, size_t bytes) {
  std::memcpy(device_dst, host_src, bytes);
  count_copy_in(bytes);
}

void CpuDevice::copy_out(void* host_dst, const void* device_src, size_t bytes) {
  std::memcpy(host_dst, device_src, bytes);
}

void* CpuDevice::raw_allocate(size_t bytes) { return host_allocate(bytes); }
void CpuDevice::raw_release(void* data, size_t bytes) { host_release(data, bytes); }

}  // namespace strata
