#include "backend/sim/sim_device.h"

#include <chrono>
#include <cstring>
#include <thread>

#include "backend/host_memory.h"

namespace strata {
namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

SimDevice::SimDevice(int ordinal, uint64_t capacity, double copy_bytes_per_second)
    : Device("sim:" + std::to_string(ordinal), ordinal, capacity), copy_rate_(copy_bytes_per_second) {}

void SimDevice::throttle(size_t bytes, double started) const {
  if (copy_rate_ <= 0) return;
  const double until = started + static_cast<double>(bytes) / copy_rate_;
  const double left = until - now_seconds();
  if (left > 0) std::this_thread::sleep_for(std::chrono::duration<double>(left));
}

void SimDevice::copy_in(void* device_dst, const void* host_src, size_t bytes) {
  const double started = now_seconds();
  std::memcpy(device_dst, host_src, bytes);
  count_copy_in(bytes);
  throttle(bytes, started);
}

void SimDevice::copy_out(void* host_dst, const void* device_src, size_t bytes) {
  const double started = now_seconds();
  std::memcpy(host_dst, device_src, bytes);
  throttle(bytes, started);
}

// The pool is host memory: what makes it a device is the capacity the base
// class enforces and that the runtime reaches it only through copies.
void* SimDevice::raw_allocate(size_t bytes) { return host_allocate(bytes); }
void SimDevice::raw_release(void* data, size_t bytes) { host_release(data, bytes); }

}  // namespace strata
