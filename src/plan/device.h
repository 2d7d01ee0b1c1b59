// Devices a plan places modules on, and the per-device byte budgets
// (Accelerate's max_memory dict). Pure data.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace strata::plan {

// An accelerator ordinal, host RAM, or the disk tier. Ordering follows
// accelerate's get_max_memory: GPU ordinals ascending, then cpu, then disk.
struct Device {
  enum Kind { gpu, cpu, disk };
  Kind kind = cpu;
  int index = 0;  // meaningful for gpu only

  static Device gpu_(int i) { return {gpu, i}; }
  static Device cpu_() { return {cpu, 0}; }
  static Device disk_() { return {disk, 0}; }

  bool is_gpu() const { return kind == gpu; }
  // Accelerate's JSON spelling: the ordinal for a GPU, "cpu" or "disk".
  std::string to_string() const { return kind == gpu ? std::to_string(index) : kind == cpu ? "cpu" : "disk"; }

  friend bool operator==(const Device& a, const Device& b) {
    return a.kind == b.kind && (a.kind != gpu || a.index == b.index);
  }
  friend bool operator<(const Device& a, const Device& b) {
    if (a.kind != b.kind) return a.kind < b.kind;
    return a.kind == gpu && a.index < b.index;
  }
};

// Parses "0", "cuda:0", "sim:0" (all accelerator ordinal 0), "cpu", "disk": a
// max_memory or device-map key. Throws strata::Error.
Device parse_device(const std::string& text);

// How tables and messages name a device: accelerator_kind "" gives
// Accelerate's spelling ("0", "cpu", "disk"), "sim" gives "sim:0", "cuda" "cuda:0".
std::string device_label(const Device& d, std::string_view accelerator_kind);

// Budgets in bytes, in device order once normalized.
using MaxMemory = std::vector<std::pair<Device, double>>;

// accelerate's get_max_memory for an explicit dict: sorted into device order.
// Throws strata::Error for a device listed twice or a negative budget.
MaxMemory normalize_max_memory(MaxMemory max_memory);

// module prefix -> device, in placement order.
using DeviceMap = std::vector<std::pair<std::string, Device>>;

}  // namespace strata::plan
