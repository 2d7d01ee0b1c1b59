// The devices of one loaded model: the host plus the accelerators, owned
// together and handed to whatever needs them (no globals). The accelerators
// are the simulated ones when --sim-devices asks for some, else the GPUs the
// CUDA backend finds (none in a build without CUDA, or without a GPU, or
// with STRATA_NO_GPU set to anything but 0).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backend/cpu/cpu_device.h"
#include "backend/device.h"
#include "plan/device.h"

namespace strata {

// What --sim-devices (or STRATA_SIM_DEVICES) asks for: "2x64MiB" is two
// devices of 64 MiB, "64MiB,128MiB" two of different sizes, and "@2GB" after
// an item limits its copies to 2 GB/s ("2x64MiB@2GB"). Empty text: none.
struct SimDeviceSpec {
  uint64_t capacity = 0;
  double copy_bytes_per_second = 0;
};
std::vector<SimDeviceSpec> parse_sim_devices(std::string_view text);

class DeviceSet {
 public:
  // sim_devices as parse_sim_devices reads it; empty: the GPUs the CUDA
  // backend finds, unless `gpus` is false (then there are no accelerators).
  DeviceSet(std::string_view sim_devices, bool gpus);

  Device& cpu() { return cpu_; }
  const std::vector<std::unique_ptr<Device>>& accelerators() const { return accelerators_; }
  // "sim" or "cuda" as the accelerators are, else "" (Accelerate's ordinals).
  const std::string& accelerator_kind() const { return kind_; }
  // Why there are no GPUs, when there are none.
  const std::string& why_no_gpu() const { return why_no_gpu_; }

  // The device a plan's entry names; throws strata::Error for an accelerator
  // ordinal that does not exist. Not for the disk tier.
  Device& resolve(const plan::Device& device);
  // Every device, the host first.
  std::vector<Device*> all();

 private:
  CpuDevice cpu_;
  std::vector<std::unique_ptr<Device>> accelerators_;
  std::string kind_;
  std::string why_no_gpu_;
};

}  // namespace strata
