// What a device map costs on each device when strata runs it: the weights a
// device holds, plus what executing modules there needs (KV cache and other
// runtime bytes, activation scratch, staging for offloaded weights). The auto
// strategy places with exactly this accounting, and the command line reports
// it for every strategy, so the two can never disagree.
//
// Execution rule (the runtime's): a module mapped to an accelerator executes
// there; a module mapped to "cpu" or "disk" executes on the main device, which
// is the main accelerator when there is one and the cpu otherwise. Offloaded
// weights executing on an accelerator pass through staging slots there, and
// weights on disk are read ahead into host staging slots on the cpu.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "plan/device.h"
#include "plan/memory_needs.h"
#include "plan/module_sizes.h"
#include "plan/module_tree.h"

namespace strata::plan {

// One device's bill. Sums of whole (or 1/8) byte counts, so exact in a double.
struct DeviceUse {
  Device device;
  double budget = 0;       // from max_memory: 0 when unlisted, +infinity for disk
  double weights = 0;      // stored size of the tensors mapped here, tied tensors once
  double runtime = 0;      // runtime_bytes of the modules executing here (KV cache), held_extra_bytes of those held here
  double activations = 0;  // MemoryNeeds::activation_bytes if anything executes here
  double staging = 0;      // staging slots for offloaded units executing here; on cpu, disk read slots
  double total() const { return weights + runtime + activations + staging; }
};

struct MapUsage {
  std::optional<Device> main_accelerator;
  // Every device of max_memory plus any the map uses, in device order.
  std::vector<DeviceUse> devices;
  // Units no map entry reaches (Accelerate drops the direct buffers of modules
  // it splits); they are counted nowhere.
  std::vector<std::string> unmapped;
  // Some routed experts of a layer on an accelerator lie in RAM or on disk.
  bool experts_off_accelerator = false;

  const DeviceUse* find(const Device& d) const;
};

// A piece of the tree the runtime places whole: a module whose class is in
// no_split, a module without children, or a tensor registered directly on a
// module that is neither (it is placed by itself).
struct PlacementUnit {
  std::string name;
  double held_bytes = 0;     // its weights as stored, a tied tensor only at its first registration
  double full_bytes = 0;     // every tensor it uses, tied ones included: what staging it copies
  double runtime_bytes = 0;  // the MemoryNeeds::runtime_bytes attributed to it
  double held_extra = 0;     // the MemoryNeeds::held_extra_bytes attributed to it
  double tensors = 0;        // parameters and buffers it registers
  std::vector<int> tied_groups;  // indices into tree.tied of the groups it registers
  // A routed expert (MemoryNeeds::experts): it executes where the unit
  // `layer` (its decoder layer, the unit before its experts) does; -1 when
  // its layer was split into pieces.
  bool expert = false;
  int64_t layer = -1;
};

// Whether any accelerator holds staging slots in this bill.
bool stages_on_an_accelerator(const MapUsage& usage);

struct PlacementUnits {
  std::vector<PlacementUnit> units;  // in registration (execution) order
  // runtime_bytes keyed by names found nowhere in the tree: charged to the main device.
  double unattributed_runtime = 0;
  double unattributed_held_extra = 0;  // likewise, charged to the main device
};

// The units of `tree`. A runtime_bytes key goes to the unit that contains it,
// or else to the first unit inside it (a split decoder layer's KV cache goes
// with its first part).
PlacementUnits placement_units(const ModuleTree& tree, const std::vector<std::string>& no_split,
                               const SizeOptions& sizes, const MemoryNeeds& needs);

// Where a unit mapped to `mapped` executes.
Device execution_device(const Device& mapped, const std::optional<Device>& main_accelerator);

// The bill for units already resolved to devices (unit_devices parallel to
// units.units; nullopt for an unmapped unit). The core of map_usage, shared
// with the auto strategy.
MapUsage usage_of_units(const PlacementUnits& units, const std::vector<std::optional<Device>>& unit_devices,
                        const MaxMemory& max_memory, const MemoryNeeds& needs,
                        std::optional<Device> main_accelerator);

// The bill for `device_map` (longest matching prefix per unit, "" matching
// everything). main_accelerator is where cpu/disk modules execute; nullopt
// means the cpu.
MapUsage map_usage(const ModuleTree& tree, const DeviceMap& device_map, const MaxMemory& max_memory,
                   const std::vector<std::string>& no_split, const SizeOptions& sizes, const MemoryNeeds& needs,
                   std::optional<Device> main_accelerator);

}  // namespace strata::plan
