// The device interface: memory with a capacity, copies between host and
// device, and the counters a run reports (bytes in use, peak).
//
// `cpu` (host RAM) and `sim:N` (a simulated accelerator: its own memory pool
// with a hard capacity, explicit copies, CPU compute) are built always; their
// memory is host-addressable, so the CPU ops run on it directly. The CUDA
// device (backend/cuda) implements the same interface with memory the host cannot
// read, which is why every transfer goes through copy_in/copy_out.
// Thread-safety: allocate/release and the copies are called from the thread
// that runs the model; the counters are plain reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <utility>

namespace strata {

class Ops;

class Device {
 public:
  static constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();

  virtual ~Device() = default;
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  // "cpu", "sim:0", "cuda:1".
  const std::string& name() const { return name_; }
  // Accelerator ordinal (the N of a device map's integer keys); -1 for the CPU.
  int ordinal() const { return ordinal_; }
  bool is_accelerator() const { return ordinal_ >= 0; }
  // True when CPU code may read and write this device's memory in place.
  virtual bool host_addressable() const = 0;
  // The ops that run on this device's memory; null for host-addressable
  // devices, which run the CPU's (backend/cpu/cpu_ops.h).
  virtual Ops* native_ops() { return nullptr; }

  // 64-byte aligned memory of `bytes`. Throws strata::Error naming the device,
  // `what` it was for and the figures when the capacity would be exceeded.
  void* allocate(size_t bytes, const std::string& what);
  // Gives back memory from allocate() with the same size.
  void release(void* data, size_t bytes);

  // Host -> device and device -> host copies, done when they return.
  virtual void copy_in(void* device_dst, const void* host_src, size_t bytes) = 0;
  virtual void copy_out(void* host_dst, const void* device_src, size_t bytes) = 0;
  // Staging slots: device memory that offloaded weights are copied into
  // just before the block that reads them runs (numbered 0..n-1 per device).
  // A device with a copy engine (CUDA) runs these copies beside its compute,
  // ordered per slot:
  //   fill_slot(k, copies)  queues the copies into slot k; they start once
  //                         the compute that read slot k before is done
  //                         (release_slot), and run beside other compute;
  //   use_slot(k)           compute queued from now on waits for k's fill;
  //   release_slot(k)       the compute queued so far is the last to read
  //                         k's contents: the next fill may start after it;
  //   finish_fill(k)        the host waits until k's last fill is done (its
  //                         host sources may change after that).
  // The host bytes must stay as they are until finish_fill(k). The default
  // fills with copy_in, at once, for devices that compute synchronously.
  struct HostCopy {
    void* dst;
    const void* src;
    size_t bytes;
  };
  virtual void fill_slot(size_t slot, std::span<const HostCopy> copies) {
    (void)slot;
    for (const HostCopy& c : copies) copy_in(c.dst, c.src, c.bytes);
  }
  virtual void use_slot(size_t slot) { (void)slot; }
  virtual void release_slot(size_t slot) { (void)slot; }
  virtual void finish_fill(size_t slot) { (void)slot; }
  // Host memory this device copies from often (the host tier, the disk read
  // slots): page-locked where that makes copies faster (CUDA); false where
  // nothing was done, with `failure` set when the device tried and could
  // not (its copies then run slower). unpin_host before the memory is released.
  virtual bool pin_host(void* data, size_t bytes, std::string& failure) { return false; }
  virtual void unpin_host(void* data) {}

  uint64_t capacity() const { return capacity_; }
  // Lowers the capacity to a budget, so that the budget is a hard limit too.
  void limit_capacity(uint64_t budget) {
    if (budget < capacity_) capacity_ = budget;
  }
  uint64_t in_use() const { return in_use_; }
  uint64_t peak() const { return peak_; }
  uint64_t bytes_copied_in() const { return copied_in_; }

 protected:
  Device(std::string name, int ordinal, uint64_t capacity)
      : name_(std::move(name)), ordinal_(ordinal), capacity_(capacity) {}
  virtual void* raw_allocate(size_t bytes) = 0;
  virtual void raw_release(void* data, size_t bytes) = 0;
  void count_copy_in(size_t bytes) { copied_in_ += bytes; }

 private:
  std::string name_;
  int ordinal_;
  uint64_t capacity_;
  uint64_t in_use_ = 0;
  uint64_t peak_ = 0;
  uint64_t copied_in_ = 0;
};

// Memory owned on one device (RAII, move-only): the owner half of DESIGN.md's
// view-vs-owner rule. Views into it stay valid for its lifetime.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Device& device, size_t bytes, const std::string& what)
      : device_(&device), bytes_(bytes), data_(bytes ? device.allocate(bytes, what) : nullptr) {}
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer&& other) noexcept { *this = std::move(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      reset();
      device_ = std::exchange(other.device_, nullptr);
      bytes_ = std::exchange(other.bytes_, 0);
      data_ = std::exchange(other.data_, nullptr);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void reset() {
    if (data_) device_->release(data_, bytes_);
    device_ = nullptr;
    bytes_ = 0;
    data_ = nullptr;
  }
  uint8_t* data() const { return static_cast<uint8_t*>(data_); }
  float* floats() const { return static_cast<float*>(data_); }
  size_t bytes() const { return bytes_; }
  Device* device() const { return device_; }

 private:
  Device* device_ = nullptr;
  size_t bytes_ = 0;
  void* data_ = nullptr;
};

// Rounds a byte count up to the 64-byte granule every allocation uses.
inline constexpr size_t align64(size_t bytes) { return (bytes + 63) / 64 * 64; }

}  // namespace strata
