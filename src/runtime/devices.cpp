#include "runtime/devices.h"

#include <cstdlib>
#include <sstream>

#include "backend/cuda/cuda_backend.h"
#include "backend/sim/sim_device.h"
#include "core/byte_size.h"
#include "strata/error.h"

namespace strata {
namespace {

const char* kSimHint = "--sim-devices or STRATA_SIM_DEVICES: write e.g. 2x64MiB (two devices of 64 MiB), 64MiB,128MiB, or 2x64MiB@2GB to limit copies to 2 GB/s";

}  // namespace

std::vector<SimDeviceSpec> parse_sim_devices(std::string_view text) {
  std::vector<SimDeviceSpec> out;
  if (trim_space(text).empty()) return out;
  // getline would drop an empty last item; a trailing comma is a typo worth saying.
  if (trim_space(text).back() == ',') throw Error("simulated devices: empty item in '" + std::string(text) + "'", "", "", kSimHint);
  std::stringstream items{std::string(text)};
  for (std::string item; std::getline(items, item, ',');) {
    item = std::string(trim_space(item));
    if (item.empty()) throw Error("simulated devices: empty item in '" + std::string(text) + "'", "", "", kSimHint);
    SimDeviceSpec spec;
    if (const size_t at = item.find('@'); at != std::string::npos) {
      try {
        spec.copy_bytes_per_second = static_cast<double>(parse_byte_size(trim_space(item.substr(at + 1))));
      } catch (const Error& e) {
        throw Error("simulated devices: copy rate: " + e.message(), "", "", kSimHint);
      }
      item = std::string(trim_space(item.substr(0, at)));
    }
    int count = 1;
    if (const size_t x = item.find('x'); x != std::string::npos && x > 0 &&
                                          item.find_first_not_of("0123456789") == x && x <= 2) {
      count = std::stoi(item.substr(0, x));
      item = item.substr(x + 1);
    }
    if (count < 1 || count > 64) throw Error("simulated devices: between 1 and 64 per item", "", "", kSimHint);
    try {
      spec.capacity = parse_byte_size(trim_space(item));
    } catch (const Error& e) {
      throw Error("simulated devices: " + e.message(), "", "", kSimHint);
    }
    out.insert(out.end(), static_cast<size_t>(count), spec);
  }
  return out;
}

DeviceSet::DeviceSet(std::string_view sim_devices, bool gpus) {
  const auto specs = parse_sim_devices(sim_devices);
  for (size_t i = 0; i < specs.size(); ++i)
    accelerators_.push_back(
        std::make_unique<SimDevice>(static_cast<int>(i), specs[i].capacity, specs[i].copy_bytes_per_second));
  if (!accelerators_.empty()) {
    kind_ = "sim";
    why_no_gpu_ = "simulated devices replace the GPUs";
    return;
  }
  if (!gpus) {
    why_no_gpu_ = "GPUs are turned off (STRATA_NO_GPU)";
    return;
  }
  accelerators_ = cuda::open_devices(0, why_no_gpu_);
  if (!accelerators_.empty()) kind_ = "cuda";
}

Device& DeviceSet::resolve(const plan::Device& device) {
  if (device.kind == plan::Device::cpu) return cpu_;
  if (device.kind == plan::Device::disk) throw Error("internal: the disk tier is not a compute device");
  if (device.index < 0 || static_cast<size_t>(device.index) >= accelerators_.size()) {
    const std::string have = accelerators_.empty() ? "there are no accelerators (" + why_no_gpu_ + ")"
                                                   : "only " + kind_ + ":0.." +
                                                         std::to_string(accelerators_.size() - 1) + " exist";
    throw Error("the device map names accelerator " + std::to_string(device.index) + ", but " + have, "", "",
                "map that module to cpu or disk, or add simulated devices with --sim-devices (e.g. 2x64MiB)");
  }
  return *accelerators_[static_cast<size_t>(device.index)];
}

std::vector<Device*> DeviceSet::all() {
  std::vector<Device*> out{&cpu_};
  for (auto& a : accelerators_) out.push_back(a.get());
  return out;
}

}  // namespace strata
