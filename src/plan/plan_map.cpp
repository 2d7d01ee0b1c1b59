#include "plan/plan_map.h"

#include <algorithm>
#include <limits>

#include "plan/auto_map.h"
#include "plan/balanced_memory.h"
#include "plan/device_map.h"
#include "strata/error.h"

namespace strata::plan {
namespace {

// Accelerate's dispatch runs offloaded modules on the first accelerator the
// map names.
std::optional<Device> first_accelerator(const DeviceMap& map) {
  for (const auto& [key, device] : map)
    if (device.is_gpu()) return device;
  return std::nullopt;
}

MaxMemory without_disk(MaxMemory budgets) {
  std::erase_if(budgets, [](const auto& b) { return b.first == Device::disk_(); });
  return budgets;
}

// The map and where offloaded modules run, before its bill.
MapPlan place(const MapRequest& r, const MemoryNeeds& needs) {
  MapPlan p;
  if (r.strategy == "auto") {
    AutoPlan a = plan_auto(*r.tree, r.max_memory, r.no_split, r.sizes, needs, r.accelerator_kind, r.main_device);
    p.device_map = std::move(a.device_map);
    p.main_accelerator = a.main_accelerator;  // plan_auto honours main_device
    p.usage = std::move(a.usage);
    return p;
  }
  if (r.strategy == "given") {
    p.device_map = r.given;
  } else if (r.strategy == "sequential" || r.strategy == "balanced" || r.strategy == "balanced_low_0") {
    const MaxMemory budgets =
        r.strategy == "sequential"
            ? r.max_memory
            : get_balanced_memory(*r.tree, without_disk(r.max_memory), r.no_split, r.sizes,
                                  r.strategy == "balanced_low_0");
    // Unclean first, for the placement order; cleaning it gives Accelerate's clean map.
    const InferResult result =
        infer_auto_device_map(*r.tree, budgets, InferOptions{r.no_split, r.sizes, false, r.offload_buffers});
    p.device_map = clean_in_placement_order(result.device_map);
    p.buffer_warning = result.buffer_warning;
  } else {
    throw Error("unknown strategy '" + r.strategy + "'", "", "",
                "use auto, sequential, balanced or balanced_low_0, or give a map");
  }
  p.main_accelerator = r.main_device ? (r.main_device->is_gpu() ? r.main_device : std::nullopt)
                                     : first_accelerator(p.device_map);
  p.usage = map_usage(*r.tree, p.device_map, r.max_memory, r.no_split, r.sizes, needs, p.main_accelerator);
  return p;
}

}  // namespace

bool over_limit(const MapRequest& r, const MapUsage& usage) {
  return std::any_of(usage.devices.begin(), usage.devices.end(), [&](const DeviceUse& d) {
    if (d.device == Device::disk_()) return false;
    return d.total() > (r.limit ? r.limit(d.device) : d.budget);
  });
}

MapPlan plan_map(const MapRequest& r) {
  // Overlapped copies need a second staging slot; an accelerator with room
  // for one still runs the model, its copies in turn with its compute. If
  // even that does not fit, the two-slot plan (or its error) stands; if it
  // fits but stages nothing, slots were not the trouble.
  MemoryNeeds one_slot = r.needs;
  one_slot.staging_slots = 1;
  const bool can_fall_back = r.needs.staging_slots > 1;
  if (r.strategy == "auto") {
    try {
      return place(r, r.needs);
    } catch (const Error& two_slots) {
      if (!can_fall_back) throw;
      MapPlan fewer = place(r, one_slot);  // its error states the one-slot minimum
      if (!stages_on_an_accelerator(fewer.usage)) throw two_slots;
      fewer.staging_slots = 1;
      return fewer;
    }
  }
  MapPlan p = place(r, r.needs);
  if (can_fall_back && over_limit(r, p.usage)) {
    MapUsage fewer = map_usage(*r.tree, p.device_map, r.max_memory, r.no_split, r.sizes, one_slot, p.main_accelerator);
    if (!over_limit(r, fewer) && stages_on_an_accelerator(fewer)) {
      p.usage = std::move(fewer);
      p.staging_slots = 1;
    }
  }
  return p;
}

MaxMemory default_max_memory(const std::vector<std::pair<Device, double>>& accelerator_capacities,
                             double available_ram) {
  MaxMemory budgets = accelerator_capacities;
  budgets.emplace_back(Device::cpu_(), 0.9 * available_ram);
  budgets.emplace_back(Device::disk_(), std::numeric_limits<double>::infinity());
  return normalize_max_memory(budgets);
}

}  // namespace strata::plan
