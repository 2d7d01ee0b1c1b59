#include "backend/device.h"

#include <cstdio>

#include "strata/error.h"

namespace strata {
namespace {

std::string mib(uint64_t bytes) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buffer;
}

}  // namespace

void* Device::allocate(size_t bytes, const std::string& what) {
  const size_t size = align64(bytes);
  if (capacity_ != kUnlimited && (size > capacity_ || in_use_ > capacity_ - size))
    throw Error("out of memory on " + name_ + ": " + what + " needs " + mib(size) + ", " + mib(in_use_) +
                    " of its " + mib(capacity_) + " are in use",
                "", "", "give this device a larger budget, or let the planner offload more (--device-map auto)");
  void* data = raw_allocate(size);
  in_use_ += size;
  if (in_use_ > peak_) peak_ = in_use_;
  return data;
}

void Device::release(void* data, size_t bytes) {
  const size_t size = align64(bytes);
  raw_release(data, size);
  in_use_ -= size;
}

}  // namespace strata
