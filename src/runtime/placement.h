// Where each block of a model lives and where it executes, resolved from a
// device map (module prefix -> device) the way Accelerate's dispatch does:
// the longest matching prefix wins; a block on an accelerator runs there; a
// block on "cpu" or "disk" is offloaded and runs on the main accelerator
// (its weights brought there just before it runs), or on the CPU when the
// run has no accelerator.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "models/causal_lm.h"
#include "plan/device.h"
#include "runtime/devices.h"

namespace strata {

struct BlockPlacement {
  plan::Device tier;     // where its weights are kept: an accelerator, cpu or disk
  Device* exec = nullptr;  // the device that runs it
  // Its weights are copied to the executing device before it runs.
  bool streamed() const { return tier.kind != plan::Device::gpu && exec->is_accelerator(); }
};

// Resolves every block. is_module(name) says whether a map key names a module
// or tensor of the model. Throws strata::Error for a block the map does not
// place, a key that names nothing in the model, an accelerator that does not
// exist, a key that splits a block (a decoder layer is never split), and a
// tied tensor placed apart from its twin.
std::vector<BlockPlacement> place_blocks(const std::vector<BlockSpec>& blocks, const plan::DeviceMap& map,
                                         std::optional<plan::Device> main_accelerator, DeviceSet& devices,
                                         const std::function<bool(const std::string&)>& is_module);

struct ExpertPlacement {
  plan::Device tier;       // an accelerator, cpu or disk
  Device* exec = nullptr;  // the device that computes it: its layer's
};

// Where each routed expert lives (its own map entry, or its layer's) and
// computes (where its layer runs). Throws strata::Error for an expert the map
// does not place, or one placed on an accelerator its layer does not run on.
std::vector<ExpertPlacement> place_experts(const std::vector<ExpertSpec>& experts, const std::vector<BlockSpec>& blocks,
                                           const std::vector<BlockPlacement>& block_placement,
                                           const plan::DeviceMap& map, DeviceSet& devices);

}  // namespace strata
