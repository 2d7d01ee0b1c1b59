// strata's own "auto" strategy. Like Accelerate's sequential placement it
// fills accelerators in ordinal order, then the cpu, then the disk tier, never
// splitting a no-split module and keeping tied parameters together; unlike it,
// it budgets everything running needs (map_usage.h): KV cache and other
// runtime bytes where each module executes, activation scratch, and staging
// room on the main accelerator only when something offloaded executes there.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plan/device.h"
#include "plan/map_usage.h"
#include "plan/memory_needs.h"
#include "plan/module_sizes.h"
#include "plan/module_tree.h"

namespace strata::plan {

struct AutoPlan {
  DeviceMap device_map;  // clean_device_map'ed, in placement order
  // The lowest-ordinal accelerator with a budget above 0: cpu and disk
  // modules execute there (on the cpu when there is none).
  std::optional<Device> main_accelerator;
  MapUsage usage;  // what map_usage reports for device_map: within every budget
};

// Places the units of `tree` (map_usage.h) on the devices of max_memory:
// accelerators with a budget above 0 in ordinal order, then cpu if listed,
// then disk only if listed (its budget is unlimited). Offloading changes what
// the main device must hold (the KV cache of offloaded layers, staging), so it
// reserves that room there and re-places until the reservation covers the
// placement it produces; the main device's share shrinks every round, so this
// ends. Throws strata::Error when nothing fits, stating the least the short
// device needs ("sim:0 needs at least 70.1 MiB (...), has 64.0 MiB") or how
// much cpu needs when there is no disk budget. accelerator_kind ("", "sim",
// "cuda") only names devices in those messages, as device_label does.
// clean_device_map of a map in placement order, with each merged prefix kept
// where its first module was placed (clean_device_map appends merged prefixes
// at the end, as Accelerate's dict does), so maps read in the order they run.
DeviceMap clean_in_placement_order(const DeviceMap& placed);

// main_device, when given, is the device that runs offloaded modules (cpu,
// or an accelerator), as the caller decided it; by default the first
// accelerator with a budget (Accelerate's main device).
AutoPlan plan_auto(const ModuleTree& tree, const MaxMemory& max_memory, const std::vector<std::string>& no_split,
                   const SizeOptions& sizes, const MemoryNeeds& needs, std::string_view accelerator_kind = {},
                   std::optional<Device> main_device = std::nullopt);

}  // namespace strata::plan
