// Turning ModelOptions into a device map for one checkpoint: the budgets
// (given, or read from the devices), the strategy or the user's map, and the
// check that every device can hold its share — all before any weight is read.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "core/thread_pool.h"
#include "format/safetensors.h"
#include "models/causal_lm.h"
#include "plan/device.h"
#include "plan/map_usage.h"
#include "runtime/devices.h"
#include "runtime/quantized_weights.h"
#include "strata/model.h"

namespace strata {

// Host staging slots for blocks read from disk: one read ahead while one computes.
inline constexpr size_t kDiskReadSlots = 2;
// Staging slots on an accelerator for the weights streamed to it: one fills
// while the block in the other computes.
inline constexpr size_t kStagingSlots = 2;

// The runtime's own buffers that a plan bills besides the model's needs:
// the disk tier's read slots (with their alignment slack) and the
// accelerators' staging slots. Both `strata map` and loading use it, so
// they plan alike.
void add_runtime_buffers(plan::MemoryNeeds& needs);

struct PlannedMap {
  plan::DeviceMap device_map;
  plan::MaxMemory max_memory;
  std::optional<plan::Device> main_accelerator;
  plan::MapUsage usage;
  std::string source;  // "auto", "sequential", ..., "user map"
  std::string offload_choice;  // what --offload-compute auto measured and chose, if it chose
  size_t staging_slots = kStagingSlots;  // per accelerator; 1 where two do not fit
  size_t host_expert_cache = 0, device_expert_cache = 0;  // experts the plan billed caches for
  // Experts of accelerator layers that lie in RAM: the most tokens routed to
  // one for which the CPU computes it (offload_compute.h), and what auto measured.
  int64_t expert_local_tokens = -1;
  std::string expert_choice;
  plan::ModuleTree tree;
};

// Throws strata::Error for a bad option, a map that names what the model does
// not have, or a device that cannot hold its share (stating the minimum).
// pool: the run's threads (the plan budgets per-thread scratch; --offload-compute
// auto times CPU products on it).
// quantized: the matrices held quantized (they count their held bytes).
PlannedMap plan_device_map(const ModelConfig& config, const Checkpoint& checkpoint, const QuantizedWeights& quantized,
                           const ModelOptions& options, DeviceSet& devices, ThreadPool& pool);

// Reads a device map given as JSON text or as a JSON file.
plan::DeviceMap parse_device_map(const std::string& text_or_file);


}  // namespace strata
