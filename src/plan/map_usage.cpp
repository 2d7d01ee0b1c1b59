#include "plan/map_usage.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <unordered_map>

#include "plan/max_memory.h"

namespace strata::plan {
namespace {

// A disk expert's slot in the RAM cache is rounded up to a whole page of
// direct I/O (format/direct_reader.h's alignment; plan/ does no I/O itself).
constexpr double kDirectReadPage = 4096;

// Every dotted prefix of `name`, longest first, ending with "" (which matches all).
template <typename Visit>
bool for_each_prefix(const std::string& name, Visit visit) {
  if (visit(name)) return true;
  for (size_t dot = name.rfind('.'); dot != std::string::npos && dot > 0; dot = name.rfind('.', dot - 1))
    if (visit(name.substr(0, dot))) return true;
  return !name.empty() && visit(std::string());
}

class UnitCollector {
 public:
  UnitCollector(const ModuleTree& tree, const std::vector<std::string>& no_split, const SizeOptions& options,
                const std::vector<MemoryNeeds::Expert>& experts)
      : no_split_(no_split), sizes_(compute_module_sizes(tree, options)), tied_(index_tied_groups(tree.tied)) {
    for (const MemoryNeeds::Expert& e : experts) experts_.insert(e.module);
    // The one size of each tied tensor: counted at its first registration only.
    group_size_.assign(tree.tied.size(), 0);
    for (size_t g = 0; g < tree.tied.size(); ++g)
      for (const auto& member : tree.tied[g]) group_size_[g] = std::max(group_size_[g], sizes_.at(member));
  }

  std::vector<PlacementUnit> collect(const ModuleNode& root) {
    visit(root, "");
    return std::move(units_);
  }

 private:
  void visit(const ModuleNode& node, const std::string& path) {
    if (experts_.count(path)) {
      expert_unit(node, path, -1);
      return;
    }
    if (node.children.empty() || is_no_split(node, no_split_)) {
      // Its routed experts are units of their own, right after it.
      std::vector<std::pair<const ModuleNode*, std::string>> experts;
      gather_experts(node, path, experts);
      double expert_bytes = 0, expert_tensors = 0;
      for (const auto& [e, e_path] : experts) {
        expert_bytes += sizes_.at(e_path);
        expert_tensors += static_cast<double>(count_tensors(*e));
      }
      PlacementUnit unit{path, sizes_.at(path) - expert_bytes, 0, 0, 0,
                         static_cast<double>(count_tensors(node)) - expert_tensors, {}};
      std::set<int> groups;
      gather_groups(node, path, groups);
      unit.full_bytes = unit.held_bytes;
      for (int g : groups) {
        unit.tied_groups.push_back(g);
        if (!first_registration_inside(g, path)) unit.full_bytes += group_size_[static_cast<size_t>(g)];
      }
      const auto layer = static_cast<int64_t>(units_.size());
      units_.push_back(std::move(unit));
      for (const auto& [e, e_path] : experts) expert_unit(*e, e_path, layer);
      return;
    }
    // A module that is split: its own tensors are placed one by one, as
    // Accelerate queues them (params first, then children, then buffers).
    for (const auto& p : node.params) tensor_unit(join_name(path, p.name));
    for (const auto& c : node.children) visit(c, join_name(path, c.name));
    for (const auto& b : node.buffers) tensor_unit(join_name(path, b.name));
  }

  void expert_unit(const ModuleNode& node, const std::string& path, int64_t layer) {
    const double bytes = sizes_.at(path);
    PlacementUnit unit{path, bytes, bytes, 0, 0, static_cast<double>(count_tensors(node)), {}};
    unit.expert = true;
    unit.layer = layer;
    units_.push_back(std::move(unit));
  }

  void gather_experts(const ModuleNode& node, const std::string& path,
                      std::vector<std::pair<const ModuleNode*, std::string>>& out) const {
    for (const auto& c : node.children) {
      const std::string child = join_name(path, c.name);
      if (experts_.count(child)) out.emplace_back(&c, child);
      else gather_experts(c, child, out);
    }
  }

  void tensor_unit(const std::string& name) {
    PlacementUnit unit{name, sizes_.at(name), sizes_.at(name), 0, 0, 1, {}};
    if (auto it = tied_.find(name); it != tied_.end()) {
      unit.tied_groups.push_back(it->second);
      unit.full_bytes = group_size_[static_cast<size_t>(it->second)];
    }
    units_.push_back(std::move(unit));
  }

  static size_t count_tensors(const ModuleNode& node) {
    size_t n = node.params.size() + node.buffers.size();
    for (const auto& c : node.children) n += count_tensors(c);
    return n;
  }

  void gather_groups(const ModuleNode& node, const std::string& path, std::set<int>& groups) const {
    for (const auto& p : node.params)
      if (auto it = tied_.find(join_name(path, p.name)); it != tied_.end()) groups.insert(it->second);
    for (const auto& c : node.children) gather_groups(c, join_name(path, c.name), groups);
  }

  // Whether the registration that carries group g's size lies under `path`.
  bool first_registration_inside(int g, const std::string& path) const {
    for (const auto& [name, group] : tied_)
      if (group == g && sizes_.contains(name) && (path.empty() || name.rfind(path + ".", 0) == 0)) return true;
    return false;
  }

  const std::vector<std::string>& no_split_;
  ModuleSizes sizes_;
  TiedIndex tied_;
  std::vector<double> group_size_;
  std::set<std::string> experts_;
  std::vector<PlacementUnit> units_;
};

}  // namespace

const DeviceUse* MapUsage::find(const Device& d) const {
  for (const auto& u : devices)
    if (u.device == d) return &u;
  return nullptr;
}

PlacementUnits placement_units(const ModuleTree& tree, const std::vector<std::string>& no_split,
                               const SizeOptions& sizes, const MemoryNeeds& needs) {
  PlacementUnits out;
  out.units = UnitCollector(tree, no_split, sizes, needs.experts).collect(tree.root);
  std::unordered_map<std::string, size_t> unit_index, first_inside;
  for (size_t i = 0; i < out.units.size(); ++i) {
    unit_index.emplace(out.units[i].name, i);
    for_each_prefix(out.units[i].name, [&](const std::string& prefix) {
      first_inside.emplace(prefix, i);
      return false;
    });
  }
  // A key goes to the unit containing it, else to the first unit inside it.
  auto attribute = [&](const std::string& key) -> std::optional<size_t> {
    std::optional<size_t> target;
    for_each_prefix(key, [&](const std::string& prefix) {
      if (auto it = unit_index.find(prefix); it != unit_index.end()) target = it->second;
      return target.has_value();
    });
    if (!target)
      if (auto it = first_inside.find(key); it != first_inside.end()) target = it->second;
    return target;
  };
  for (const auto& [key, bytes] : needs.runtime_bytes) {
    if (auto target = attribute(key)) out.units[*target].runtime_bytes += bytes;
    else out.unattributed_runtime += bytes;
  }
  for (const auto& [key, bytes] : needs.held_extra_bytes) {
    if (auto target = attribute(key)) out.units[*target].held_extra += bytes;
    else out.unattributed_held_extra += bytes;
  }
  return out;
}

Device execution_device(const Device& mapped, const std::optional<Device>& main_accelerator) {
  if (mapped.is_gpu()) return mapped;
  return main_accelerator ? *main_accelerator : Device::cpu_();
}

bool stages_on_an_accelerator(const MapUsage& usage) {
  return std::any_of(usage.devices.begin(), usage.devices.end(),
                     [](const DeviceUse& u) { return u.device.is_gpu() && u.staging > 0; });
}

MapUsage usage_of_units(const PlacementUnits& units, const std::vector<std::optional<Device>>& unit_devices,
                        const MaxMemory& max_memory, const MemoryNeeds& needs,
                        std::optional<Device> main_accelerator) {
  std::map<Device, DeviceUse> bill;
  const auto use = [&](const Device& d) -> DeviceUse& {
    auto [it, inserted] = bill.try_emplace(d);
    if (inserted) {
      it->second.device = d;
      it->second.budget = budget_of(max_memory, d);
    }
    return it->second;
  };
  for (const auto& [d, b] : max_memory) use(d);

  MapUsage out;
  out.main_accelerator = main_accelerator;
  // Without a cpu key the host is not budgeted (Accelerate: nothing on cpu):
  // what executes there, and the session's host buffers, are not billed.
  const bool cpu_budgeted = std::any_of(max_memory.begin(), max_memory.end(),
                                        [](const auto& b) { return b.first == Device::cpu_(); });
  std::set<Device> executing;
  // Per executing accelerator, the staged units; a tied group's units (an
  // embedding and its head) share one slot and count once, at their largest.
  struct Staged {
    double bytes;
    std::vector<int> tied_groups;
  };
  std::map<Device, std::vector<Staged>> staged_units;
  double largest_read = 0;  // the largest disk unit as read into a host slot
  // Expert caches: the largest expert read from disk (its slot in the RAM
  // cache), and per accelerator the largest expert copied to it.
  double largest_expert_read = 0;
  std::map<Device, double> largest_expert_copied;
  std::vector<Device> exec_of(units.units.size(), Device::cpu_());
  for (size_t i = 0; i < units.units.size(); ++i) {
    const PlacementUnit& unit = units.units[i];
    if (!unit_devices[i]) {
      out.unmapped.push_back(unit.name);
      continue;
    }
    const Device mapped = *unit_devices[i];
    const bool local = !mapped.is_gpu() && std::find(needs.local_when_offloaded.begin(),
                                                     needs.local_when_offloaded.end(),
                                                     unit.name) != needs.local_when_offloaded.end();
    Device exec = local ? Device::cpu_() : execution_device(mapped, main_accelerator);
    if (unit.expert && unit.layer >= 0 && unit_devices[static_cast<size_t>(unit.layer)])
      exec = exec_of[static_cast<size_t>(unit.layer)];
    exec_of[i] = exec;
    use(mapped).weights += unit.held_bytes;
    if (unit.expert) {
      // Held where mapped; fetched into a cache when routed, never staged.
      const double held = unit.full_bytes + unit.held_extra;
      if (!(mapped == Device::disk_())) use(mapped).runtime += unit.held_extra;
      if (mapped == Device::disk_())
        largest_expert_read = std::max(largest_expert_read, std::max(unit.full_bytes, needs.expert_stored_bytes) +
                                                                needs.disk_read_slack * unit.tensors + kDirectReadPage +
                                                                (needs.experts_converted ? held : 0));
      if (exec.is_gpu() && !(mapped == exec)) {
        out.experts_off_accelerator = true;
        if (needs.device_expert_cache > 0)
          largest_expert_copied[exec] = std::max(largest_expert_copied[exec], held);
      }
      continue;
    }
    // Weights held in memory take their held size there; the disk tier holds no memory.
    if (!(mapped == Device::disk_())) use(mapped).runtime += unit.held_extra;
    if (!(exec == Device::cpu_()) || cpu_budgeted) {
      use(exec).runtime += unit.runtime_bytes;
      executing.insert(exec);
    }
    // A staged copy is held like the weights; a tied tensor it borrows may add
    // up to 63 bytes of alignment of its own.
    const double staged = unit.full_bytes + unit.held_extra + 64.0 * static_cast<double>(unit.tied_groups.size());
    if (!mapped.is_gpu() && exec.is_gpu()) {
      auto& list = staged_units[exec];
      const auto shares_group = [&](const Staged& s) {
        return std::any_of(unit.tied_groups.begin(), unit.tied_groups.end(), [&](int g) {
          return std::find(s.tied_groups.begin(), s.tied_groups.end(), g) != s.tied_groups.end();
        });
      };
      if (const auto it = std::find_if(list.begin(), list.end(), shares_group); it != list.end())
        it->bytes = std::max(it->bytes, staged);
      else
        list.push_back({staged, unit.tied_groups});
    }
    if (mapped == Device::disk_())
      largest_read = std::max(largest_read, staged + needs.disk_read_slack * unit.tensors);
  }
  if (!executing.empty())
    use(execution_device(Device::cpu_(), main_accelerator)).runtime +=
        units.unattributed_runtime + units.unattributed_held_extra;
  for (const Device& d : executing) use(d).activations = needs.activation_bytes;
  if (!executing.empty() && cpu_budgeted) use(Device::cpu_()).runtime += needs.host_bytes;
  if (largest_read > 0 && cpu_budgeted) use(Device::cpu_()).staging += needs.disk_read_slots * largest_read;
  if (largest_expert_read > 0 && cpu_budgeted)
    use(Device::cpu_()).staging += std::max(needs.host_expert_cache, 1) * largest_expert_read;
  for (const auto& [d, bytes] : largest_expert_copied) use(d).staging += needs.device_expert_cache * bytes;
  if (out.experts_off_accelerator && cpu_budgeted) use(Device::cpu_()).runtime += needs.expert_host_activations;
  // Staged units take turns in the slots, each slot the size of its largest
  // unit: together at most the largest staging_slots units.
  for (auto& [d, list] : staged_units) {
    std::vector<double> sizes;
    for (const Staged& s : list) sizes.push_back(s.bytes);
    std::sort(sizes.begin(), sizes.end(), std::greater<>());
    const size_t slots = std::min(sizes.size(), static_cast<size_t>(std::max(needs.staging_slots, 1)));
    for (size_t k = 0; k < slots; ++k) use(d).staging += sizes[k];
  }
  for (auto& [d, u] : bill) out.devices.push_back(u);
  return out;
}

MapUsage map_usage(const ModuleTree& tree, const DeviceMap& device_map, const MaxMemory& max_memory,
                   const std::vector<std::string>& no_split, const SizeOptions& sizes, const MemoryNeeds& needs,
                   std::optional<Device> main_accelerator) {
  const PlacementUnits units = placement_units(tree, no_split, sizes, needs);
  std::unordered_map<std::string, Device> lookup;
  for (const auto& [name, d] : device_map) lookup.insert_or_assign(name, d);
  std::vector<std::optional<Device>> unit_devices;
  unit_devices.reserve(units.units.size());
  for (const auto& unit : units.units) {
    std::optional<Device> found;
    for_each_prefix(unit.name, [&](const std::string& prefix) {
      if (auto it = lookup.find(prefix); it != lookup.end()) found = it->second;
      return found.has_value();
    });
    unit_devices.push_back(found);
  }
  return usage_of_units(units, unit_devices, max_memory, needs, main_accelerator);
}

}  // namespace strata::plan
