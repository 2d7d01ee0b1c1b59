#include "runtime/placement.h"

#include <algorithm>
#include <map>

#include "strata/error.h"

namespace strata {
namespace {

// `key` covers `name` when it is "", the name itself, or a dotted prefix of it.
bool covers(const std::string& key, const std::string& name) {
  return key.empty() || name == key || (name.size() > key.size() && name.compare(0, key.size(), key) == 0 &&
                                        name[key.size()] == '.');
}

std::string label(const plan::Device& d, DeviceSet& devices) {
  if (d.kind == plan::Device::gpu) return devices.resolve(d).name();
  return d.to_string();
}

const plan::Device* longest_match(const plan::DeviceMap& map, const std::string& module) {
  const plan::Device* found = nullptr;
  size_t best = 0;
  for (const auto& [key, device] : map)
    if (covers(key, module) && (!found || key.size() >= best)) {
      found = &device;
      best = key.size();
    }
  return found;
}

// The tier the map gives `module`; throws strata::Error when it gives none.
const plan::Device& tier_of(const plan::DeviceMap& map, const std::string& module) {
  const plan::Device* tier = longest_match(map, module);
  if (!tier)
    throw Error("the device map does not place " + module, "", "",
                "add an entry for it, or map \"\" to a device for everything not listed");
  return *tier;
}

}  // namespace

std::vector<BlockPlacement> place_blocks(const std::vector<BlockSpec>& blocks, const plan::DeviceMap& map,
                                         std::optional<plan::Device> main_accelerator, DeviceSet& devices,
                                         const std::function<bool(const std::string&)>& is_module) {
  for (const auto& [key, device] : map) {
    if (!key.empty() && !is_module(key))
      throw Error("the device map names '" + key + "', which is no module or tensor of this model", "", "",
                  "use Hugging Face module names such as model.layers.0 or lm_head (strata map -m DIR lists them)");
    if (device.is_gpu()) devices.resolve(device);  // throws for an ordinal that does not exist
  }
  Device& offload_exec = main_accelerator ? devices.resolve(*main_accelerator) : devices.cpu();

  std::vector<BlockPlacement> out;
  for (const BlockSpec& block : blocks) {
    const plan::Device& tier = tier_of(map, block.module);
    // A key inside the block splits it when it holds some of the block's
    // weights; keys that hold only routed experts (their own groups) do not.
    for (const auto& [key, device] : map) {
      if (key.size() <= block.module.size() || !covers(block.module, key) || device == tier) continue;
      const bool holds_block_weights = std::any_of(block.weights.begin(), block.weights.end(),
                                                   [&](const WeightSpec& w) { return covers(key, w.name); });
      if (holds_block_weights)
        throw Error("the device map splits " + block.module + ": " + key + " is on " + label(device, devices) +
                        " but the rest on " + label(tier, devices),
                    "", "", "a decoder layer runs on one device; map the whole module (its routed experts may go apart)");
    }
    BlockPlacement p;
    p.tier = tier;
    p.exec = tier.is_gpu() ? &devices.resolve(tier) : block.lookup ? &devices.cpu() : &offload_exec;
    out.push_back(p);
  }

  // A tensor two blocks share (a tied embedding and head) is stored once.
  std::map<std::string, size_t> first_user;
  for (size_t b = 0; b < blocks.size(); ++b)
    for (const WeightSpec& w : blocks[b].weights) {
      const auto [it, fresh] = first_user.emplace(w.name, b);
      if (fresh) continue;
      const BlockPlacement& a = out[it->second];
      if (!(a.tier == out[b].tier) || a.exec != out[b].exec)
        throw Error("the device map puts " + blocks[it->second].module + " and " + blocks[b].module +
                        " apart, but they share the tied tensor " + w.name,
                    "", "", "place both on one device");
    }
  return out;
}

std::vector<ExpertPlacement> place_experts(const std::vector<ExpertSpec>& experts, const std::vector<BlockSpec>& blocks,
                                           const std::vector<BlockPlacement>& block_placement,
                                           const plan::DeviceMap& map, DeviceSet& devices) {
  std::vector<Device*> layer_exec;
  for (size_t b = 0; b < blocks.size(); ++b)
    if (blocks[b].layer >= 0) {
      if (layer_exec.size() <= static_cast<size_t>(blocks[b].layer)) layer_exec.resize(static_cast<size_t>(blocks[b].layer) + 1);
      layer_exec[static_cast<size_t>(blocks[b].layer)] = block_placement[b].exec;
    }
  std::vector<ExpertPlacement> out;
  for (const ExpertSpec& e : experts) {
    const plan::Device& tier = tier_of(map, e.module);
    Device* exec = layer_exec.at(static_cast<size_t>(e.layer));
    if (tier.is_gpu() && &devices.resolve(tier) != exec)
      throw Error("the device map puts " + e.module + " on " + label(tier, devices) + ", but its layer runs on " +
                      exec->name(),
                  "", "", "an expert computes where its layer does: map it there, to cpu or to disk");
    out.push_back({tier, exec});
  }
  return out;
}

}  // namespace strata
