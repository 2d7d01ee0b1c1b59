#include "backend/device.h"

#include "core/byte_size.h"
#include "strata/error.h"

namespace strata {

void* Device::allocate(size_t bytes, const std::string& what) {
  const size_t size = align64(bytes);
  if (capacity_ != kUnlimited && (size > capacity_ || in_use_ > capacity_ - size))
    throw Error("out of memory on " + name_ + ": " + what + " needs " + format_bytes(static_cast<double>(size)) +
                    ", " + format_bytes(static_cast<double>(in_use_)) + " of its " +
                    format_bytes(static_cast<double>(capacity_)) + " are in use",
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
