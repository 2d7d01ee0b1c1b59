#include "backend/sim/sim_device.h"

#include <chrono>
#include <cstring>
#include <thread>

#include "backend/host_memory.h"
#include "core/clock.h"
#include "strata/error.h"

namespace strata {

SimDevice::SimDevice(int ordinal, uint64_t capacity, double copy_bytes_per_second)
    : Device("sim:" + std::to_string(ordinal), ordinal, capacity), copy_rate_(copy_bytes_per_second) {}

SimDevice::~SimDevice() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  if (copier_.joinable()) copier_.join();
}

void SimDevice::throttle(size_t bytes, std::chrono::steady_clock::time_point started) const {
  if (copy_rate_ <= 0) return;
  const double left = static_cast<double>(bytes) / copy_rate_ - seconds_since(started);
  if (left > 0) std::this_thread::sleep_for(std::chrono::duration<double>(left));
}

void SimDevice::copy_in(void* device_dst, const void* host_src, size_t bytes) {
  const auto started = std::chrono::steady_clock::now();
  std::memcpy(device_dst, host_src, bytes);
  count_copy_in(bytes);
  throttle(bytes, started);
}

void SimDevice::copy_out(void* host_dst, const void* device_src, size_t bytes) {
  const auto started = std::chrono::steady_clock::now();
  std::memcpy(host_dst, device_src, bytes);
  throttle(bytes, started);
}

void SimDevice::grow_slots(size_t slot) {
  if (slot < fills_queued_.size()) return;
  fills_queued_.resize(slot + 1, 0);
  fills_done_.resize(slot + 1, 0);
  slot_in_use_.resize(slot + 1, false);
}

void SimDevice::fill_slot(size_t slot, std::span<const HostCopy> copies) {
  {
    std::lock_guard lock(mutex_);
    grow_slots(slot);
    if (slot_in_use_[slot])
      throw Error("internal: " + name() + " was asked to refill staging slot " + std::to_string(slot) +
                  " while a block still reads it");
    // Started before anything is queued: a thread that fails to start
    // leaves no fill that use_slot would wait for forever.
    if (!copier_.joinable()) copier_ = std::thread([this] { copier_loop(); });
    queue_.push_back({slot, std::vector<HostCopy>(copies.begin(), copies.end())});
    ++fills_queued_[slot];
  }
  for (const HostCopy& c : copies) count_copy_in(c.bytes);
  changed_.notify_all();
}

void SimDevice::use_slot(size_t slot) {
  std::unique_lock lock(mutex_);
  grow_slots(slot);
  changed_.wait(lock, [&] { return fills_done_[slot] == fills_queued_[slot]; });
  slot_in_use_[slot] = true;
}

void SimDevice::release_slot(size_t slot) {
  std::lock_guard lock(mutex_);
  grow_slots(slot);
  slot_in_use_[slot] = false;
}

void SimDevice::finish_fill(size_t slot) {
  std::unique_lock lock(mutex_);
  grow_slots(slot);
  changed_.wait(lock, [&] { return fills_done_[slot] == fills_queued_[slot]; });
}

// Fills run in the order queued; stopping drains the queue first, so no copy
// is left half done into memory that is about to go.
void SimDevice::copier_loop() {
  for (;;) {
    Fill fill;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      fill = std::move(queue_.front());
      queue_.pop_front();
    }
    const auto started = std::chrono::steady_clock::now();
    size_t bytes = 0;
    for (const HostCopy& c : fill.copies) {
      std::memcpy(c.dst, c.src, c.bytes);
      bytes += c.bytes;
    }
    throttle(bytes, started);
    {
      std::lock_guard lock(mutex_);
      ++fills_done_[fill.slot];
    }
    changed_.notify_all();
  }
}

// The pool is host memory: what makes it a device is the capacity the base
// class enforces and that the runtime reaches it only through copies.
void* SimDevice::raw_allocate(size_t bytes) { return host_allocate(bytes); }
void SimDevice::raw_release(void* data, size_t bytes) { host_release(data, bytes); }

}  // namespace strata
