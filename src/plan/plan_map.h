// The one planning function `strata map` and loading share (DESIGN.md,
// "Device maps and max-memory"), so the map a user previews is the map that
// loads: a strategy (strata's auto, or Accelerate's sequential, balanced,
// balanced_low_0) or a map given as is, its bill per device, and one staging
// slot instead of two where two do not fit. Pure: no I/O.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "plan/device.h"
#include "plan/map_usage.h"
#include "plan/memory_needs.h"
#include "plan/module_sizes.h"
#include "plan/module_tree.h"

namespace strata::plan {

struct MapRequest {
  const ModuleTree* tree = nullptr;
  std::vector<std::string> no_split;
  SizeOptions sizes;
  MemoryNeeds needs;
  MaxMemory max_memory;
  std::string strategy = "auto";  // auto, sequential, balanced, balanced_low_0, or "given"
  DeviceMap given;                 // the map itself, with strategy "given"
  bool offload_buffers = false;    // Accelerate's offload_buffers
  std::string accelerator_kind;    // "", "sim" or "cuda": names devices in messages
  // The device offloaded modules run on, when the caller decided it (cpu, or
  // an accelerator); else auto's main accelerator, or the first accelerator
  // of the map, as Accelerate's dispatch picks it.
  std::optional<Device> main_device;
  // The most a device may hold; empty: its budget. Loading passes the lesser
  // of budget and capacity.
  std::function<double(const Device&)> limit;
};

struct MapPlan {
  DeviceMap device_map;  // in placement order
  std::optional<Device> main_accelerator;
  MapUsage usage;
  int staging_slots = 2;       // per accelerator that runs offloaded modules
  bool buffer_warning = false;  // Accelerate would warn about offloaded buffers
};

// Throws strata::Error for an unknown strategy, and (auto) when nothing fits,
// stating the least the short device needs. Accelerate's strategies and given
// maps are planned whatever they cost; compare usage with over_limit().
MapPlan plan_map(const MapRequest& request);

// Whether any device's bill exceeds its limit (or its budget).
bool over_limit(const MapRequest& request, const MapUsage& usage);

// Budgets when none are given: each accelerator's capacity, 90% of the RAM
// available now (the rest is the process's own code, the page cache's
// minimum and the session's host buffers), and the disk.
MaxMemory default_max_memory(const std::vector<std::pair<Device, double>>& accelerator_capacities,
                             double available_ram);

}  // namespace strata::plan
