// The auto strategy: a sequential fill that counts what map_usage counts, run
// to a fixed point of the main device's reservation. See auto_map.h.
#include "plan/auto_map.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <numeric>
#include <unordered_map>

#include "core/byte_size.h"
#include "plan/clean_device_map.h"
#include "plan/max_memory.h"
#include "strata/error.h"

namespace strata::plan {
namespace {

// Units that must share a device because they register one tied tensor, found
// with a union-find over the tied groups; each unit's group lists its members
// in unit order.
std::vector<std::vector<size_t>> colocated_groups(const std::vector<PlacementUnit>& units, size_t tied_groups) {
  std::vector<size_t> parent(units.size());
  std::iota(parent.begin(), parent.end(), size_t{0});
  const auto find = [&](size_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  std::vector<std::optional<size_t>> first_holder(tied_groups);
  for (size_t i = 0; i < units.size(); ++i)
    for (int g : units[i].tied_groups) {
      auto& holder = first_holder[static_cast<size_t>(g)];
      if (holder) parent[find(i)] = find(*holder);
      else holder = i;
    }
  std::vector<std::vector<size_t>> members(units.size());
  for (size_t i = 0; i < units.size(); ++i) members[find(i)].push_back(i);
  std::vector<std::vector<size_t>> out(units.size());
  for (size_t i = 0; i < units.size(); ++i) out[i] = members[find(i)];
  return out;
}

// One sequential fill with reserve[k] bytes held back on device k.
struct Attempt {
  std::vector<std::optional<Device>> unit_devices;
  std::vector<size_t> order;          // units in the order they were placed
  std::optional<size_t> stuck;        // the first unit no device could take
  std::vector<double> own;            // per device: what the fill charged it itself
  std::vector<size_t> units_on;       // per device: units placed there
};

class AutoPlanner {
 public:
  AutoPlanner(const ModuleTree& tree, const MaxMemory& max_memory, const std::vector<std::string>& no_split,
              const SizeOptions& sizes, const MemoryNeeds& needs, std::string_view kind,
              std::optional<Device> main_device)
      : max_memory_(normalize_max_memory(max_memory)),
        needs_(needs),
        kind_(kind),
        units_(placement_units(tree, no_split, sizes, needs)),
        groups_(colocated_groups(units_.units, tree.tied.size())),
        main_accelerator_(main_device ? (main_device->is_gpu() ? main_device : std::nullopt)
                                      : main_accelerator_of(max_memory_)),
        main_(main_accelerator_ ? *main_accelerator_ : Device::cpu_()) {
    for (const auto& [d, b] : max_memory_)
      if ((d.is_gpu() && b > 0) || !d.is_gpu()) devices_.push_back(d);
  }

  // The fill in unit order; then, when that streams a unit to the main
  // accelerator that is larger than every unit it keeps there (a head of a
  // large vocabulary after the layers), or does not fit at all, the fill
  // that places that unit first: a streamed unit needs a staging slot of its
  // own size, so keeping it and streaming smaller ones instead moves fewer
  // bytes per token. The fill that streams fewer bytes wins; the unit-order
  // one on a tie.
  AutoPlan run() {
    std::vector<size_t> order(units_.units.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::optional<Settled> plan;
    std::exception_ptr unit_order_error;  // it says what the unit-order fill lacks
    std::optional<size_t> first;
    try {
      plan = settle(order);
      first = largest_streamed(plan->attempt);
    } catch (const Error&) {
      unit_order_error = std::current_exception();
      first = largest_unit();
    }
    if (first) {
      std::stable_partition(order.begin(), order.end(), [&](size_t i) {
        return std::find(groups_[*first].begin(), groups_[*first].end(), i) != groups_[*first].end();
      });
      try {
        Settled other = settle(order);
        if (!plan || streamed_bytes(other.attempt) < streamed_bytes(plan->attempt)) plan = std::move(other);
      } catch (const Error&) {
        // That order fits no better.
      }
    }
    if (!plan) std::rethrow_exception(unit_order_error);
    return finish(plan->attempt, std::move(plan->usage));
  }

 private:
  struct Settled {
    Attempt attempt;
    MapUsage usage;
  };

  // Whether unit i, placed on d, executes on the main accelerator after a copy.
  bool streamed(size_t i, const Attempt& a) const {
    const PlacementUnit& unit = units_.units[i];
    return main_accelerator_ && !unit.expert && !is_lookup(unit) && a.unit_devices[i] &&
           !a.unit_devices[i]->is_gpu();
  }
  double streamed_bytes(const Attempt& a) const {
    double total = 0;
    for (size_t i = 0; i < units_.units.size(); ++i)
      if (streamed(i, a)) total += units_.units[i].full_bytes;
    return total;
  }
  // The largest streamed unit when it is larger than every unit the main
  // accelerator keeps.
  std::optional<size_t> largest_streamed(const Attempt& a) const {
    std::optional<size_t> largest;
    double kept = 0;
    for (size_t i = 0; i < units_.units.size(); ++i) {
      const double bytes = units_.units[i].full_bytes;
      if (streamed(i, a) && (!largest || bytes > units_.units[*largest].full_bytes)) largest = i;
      if (!units_.units[i].expert && a.unit_devices[i] && *a.unit_devices[i] == main_) kept = std::max(kept, bytes);
    }
    if (!largest || units_.units[*largest].full_bytes <= kept) return std::nullopt;
    return largest;
  }

  // The largest unit that could be streamed, when there is an accelerator.
  std::optional<size_t> largest_unit() const {
    std::optional<size_t> largest;
    if (!main_accelerator_) return largest;
    for (size_t i = 0; i < units_.units.size(); ++i) {
      const PlacementUnit& unit = units_.units[i];
      if (!unit.expert && !is_lookup(unit) && (!largest || unit.full_bytes > units_.units[*largest].full_bytes))
        largest = i;
    }
    return largest;
  }

  // What offloading costs a device beyond its own share (on the main
  // device: KV cache of offloaded layers and staging; on cpu: disk read
  // slots) depends on what is offloaded: reserve it and place again. Each
  // round that does not fit grows a reserve and moves at least one unit off
  // that device, so a bounded number of rounds suffices.
  Settled settle(const std::vector<size_t>& order) const {
    std::vector<double> reserve(devices_.size(), 0);
    for (size_t round = 0; round < 2 * units_.units.size() + 4; ++round) {
      const Attempt attempt = place(order, reserve);
      if (attempt.stuck) throw_short_of_room(attempt);
      MapUsage usage = usage_of_units(units_, attempt.unit_devices, max_memory_, needs_, main_accelerator_);
      bool fits = true;
      for (size_t k = 0; k < devices_.size(); ++k) {
        const DeviceUse* u = usage.find(devices_[k]);
        if (u == nullptr || u->total() <= u->budget) continue;
        fits = false;
        if (attempt.units_on[k] == 0) throw_too_small(*u);
        reserve[k] = std::max(u->total() - attempt.own[k], reserve[k] + 1);
      }
      if (!fits) continue;
      // A plan over budget must never leave here.
      for (const DeviceUse& u : usage.devices)
        if (u.total() > u.budget)
          throw Error("auto placement overfilled " + label(u.device), {}, {}, "this is a bug in strata's planner");
      return {attempt, std::move(usage)};
    }
    throw Error("auto placement did not settle", {}, {}, "this is a bug in strata's planner; please report it");
  }

  bool is_lookup(const PlacementUnit& unit) const {
    return std::find(needs_.local_when_offloaded.begin(), needs_.local_when_offloaded.end(), unit.name) !=
           needs_.local_when_offloaded.end();
  }

  bool executes_own(const Device& d) const { return d.is_gpu() || (d == main_ && d.kind == Device::cpu); }

  // What placing `members` on d costs d itself, given whether d already executes something.
  double cost_on(const Device& d, const std::vector<size_t>& members, bool d_executes) const {
    double cost = 0;
    for (size_t m : members) cost += units_.units[m].held_bytes;
    // Held in memory, weights take their held size; the disk tier holds no memory.
    if (!(d == Device::disk_()))
      for (size_t m : members) cost += units_.units[m].held_extra;
    if (!executes_own(d)) return cost;
    for (size_t m : members) cost += units_.units[m].runtime_bytes;
    return d_executes ? cost : cost + needs_.activation_bytes;
  }

  Attempt place(const std::vector<size_t>& order, const std::vector<double>& reserve) const {
    Attempt a;
    a.own.assign(devices_.size(), 0);
    a.units_on.assign(devices_.size(), 0);
    a.unit_devices.assign(units_.units.size(), std::nullopt);
    std::vector<double> used(devices_.size(), 0);
    std::vector<bool> executes(devices_.size(), false);
    for (size_t k = 0; k < devices_.size(); ++k) {
      if (devices_[k] == main_) {
        // The main device always executes (at least what is offloaded).
        used[k] = needs_.activation_bytes + units_.unattributed_runtime + units_.unattributed_held_extra;
        executes[k] = true;
      }
      // The session's host buffers live in RAM whatever executes.
      if (devices_[k] == Device::cpu_()) used[k] += needs_.host_bytes;
    }
    size_t k = 0;
    for (const size_t i : order) {
      if (units_.units[i].expert) continue;  // placed after every other unit, below
      if (a.unit_devices[i]) continue;  // placed with a tied partner
      std::vector<size_t> members;
      for (size_t m : groups_[i])
        if (!a.unit_devices[m]) members.push_back(m);
      // A lookup that does not fit (a large vocabulary's embedding) goes to
      // the next device with room without moving the fill on: offloaded, it
      // runs on the cpu where it lies, so the layers after it may still take
      // the accelerator.
      const bool lookup = members.size() == 1 && is_lookup(units_.units[members[0]]);
      for (size_t j = k;; ++j) {
        if (j == devices_.size()) {
          a.stuck = i;
          return a;
        }
        const Device& d = devices_[j];
        const double cost = cost_on(d, members, executes[j]);
        const double room = budget_of(max_memory_, d) - reserve[j];
        if (d.kind == Device::disk || used[j] + cost <= room) {
          used[j] += cost;
          executes[j] = executes[j] || executes_own(d);
          for (size_t m : members) {
            a.unit_devices[m] = d;
            a.order.push_back(m);
          }
          a.units_on[j] += members.size();
          if (!lookup) k = j;
          break;
        }
      }
    }
    place_experts(a, used, reserve);
    a.own = used;
    return a;
  }

  // Routed experts come last, so attention, routers and shared experts get
  // the fastest tiers first; each expert then takes the first device with
  // room that may hold it: the accelerator its layer runs on, the cpu, disk.
  void place_experts(Attempt& a, std::vector<double>& used, const std::vector<double>& reserve) const {
    for (size_t i = 0; i < units_.units.size(); ++i) {
      const PlacementUnit& unit = units_.units[i];
      if (!unit.expert || a.stuck) continue;
      const Device layer_exec = unit.layer >= 0 && a.unit_devices[static_cast<size_t>(unit.layer)]
                                    ? execution_device(*a.unit_devices[static_cast<size_t>(unit.layer)], main_accelerator_)
                                    : main_;
      for (size_t k = 0;; ++k) {
        if (k == devices_.size()) {
          a.stuck = i;
          return;
        }
        const Device& d = devices_[k];
        if (d.is_gpu() && !(d == layer_exec)) continue;
        const double cost = unit.held_bytes + (d == Device::disk_() ? 0 : unit.held_extra);
        if (d.kind == Device::disk || used[k] + cost <= budget_of(max_memory_, d) - reserve[k]) {
          used[k] += cost;
          a.unit_devices[i] = d;
          a.order.push_back(i);
          ++a.units_on[k];
          break;
        }
      }
    }
  }

  AutoPlan finish(const Attempt& a, MapUsage usage) const {
    AutoPlan plan;
    DeviceMap map;
    map.reserve(a.order.size());
    for (size_t i : a.order)
      if (!units_.units[i].expert) map.emplace_back(units_.units[i].name, *a.unit_devices[i]);
    plan.device_map = clean_in_placement_order(map);
    // Experts go after the cleaned map, as longer keys than their layer's
    // (clean_device_map assumes no key is the prefix of another): only those
    // away from their layer, and all of a layer's as their container when
    // they share one device.
    for (size_t i = 0; i < units_.units.size();) {
      const PlacementUnit& unit = units_.units[i];
      if (!unit.expert) {
        ++i;
        continue;
      }
      size_t end = i;
      while (end < units_.units.size() && units_.units[end].expert && units_.units[end].layer == unit.layer) ++end;
      // Whether expert e sits where its layer does (its layer's entry covers it).
      const auto with_layer = [&](size_t e) {
        const size_t layer = static_cast<size_t>(units_.units[e].layer);
        if (units_.units[e].layer < 0 || !a.unit_devices[layer].has_value()) return false;
        const Device& layer_device = a.unit_devices[layer].value();
        return layer_device == a.unit_devices[e].value();
      };
      bool shared = true;
      for (size_t e = i; e < end; ++e) shared = shared && *a.unit_devices[e] == *a.unit_devices[i];
      if (shared && unit.layer >= 0) {
        if (!with_layer(i)) plan.device_map.emplace_back(unit.name.substr(0, unit.name.rfind('.')), *a.unit_devices[i]);
      } else {
        for (size_t e = i; e < end; ++e)
          if (!with_layer(e)) plan.device_map.emplace_back(units_.units[e].name, *a.unit_devices[e]);
      }
      i = end;
    }
    plan.main_accelerator = main_accelerator_;
    plan.usage = std::move(usage);
    return plan;
  }

  std::string label(const Device& d) const {
    return d.is_gpu() && kind_.empty() ? "accelerator " + d.to_string() : device_label(d, kind_);
  }

  // A device over budget with nothing of its own placed there: what it must
  // hold anyway (the main device runs every offloaded layer; cpu stages disk reads).
  [[noreturn]] void throw_too_small(const DeviceUse& use) const {
    double largest = 0;
    for (const auto& u : units_.units) largest = std::max(largest, u.full_bytes);
    std::string parts;
    const auto part = [&](const std::string& text) { parts += (parts.empty() ? "" : " + ") + text; };
    if (use.weights > 0) part("weights " + format_bytes(use.weights));
    if (use.staging > 0) part("staging for offloaded layers " + format_bytes(use.staging));
    if (use.runtime > 0) part("KV cache and runtime " + format_bytes(use.runtime));
    if (use.activations > 0) part("activations " + format_bytes(use.activations));
    const std::string why = use.device == main_ ? "it executes every offloaded layer (largest " + format_bytes(largest) + ")"
                                                : "it stages the layers read from disk";
    throw Error("the model does not fit the memory budgets: " + label(use.device) + " needs at least " +
                    format_bytes(use.total()) + " (" + parts + "), has " + format_bytes(use.budget),
                {}, {}, why + "; give it more memory, or lower the context or batch");
  }

  [[noreturn]] void throw_short_of_room(const Attempt& a) const {
    // Everything from the stuck unit on must go to the last device, the cpu
    // (or whatever ends the list): say how much that would take.
    const Device last = devices_.empty() ? Device::cpu_() : devices_.back();
    double need = 0;
    bool executes = false;
    for (size_t i = 0; i < units_.units.size(); ++i) {
      if (a.unit_devices[i] && !(*a.unit_devices[i] == last)) continue;
      need += cost_on(last, {i}, executes);
      executes = executes || executes_own(last);
    }
    if (last == main_ && !executes) need += needs_.activation_bytes;
    const Device cpu = Device::cpu_();
    std::string message = "the model does not fit the memory budgets: " + units_.units[*a.stuck].name +
                          " and what follows fit no device; ";
    if (last == cpu)
      message += "cpu needs at least " + format_bytes(need) + ", has " + format_bytes(budget_of(max_memory_, cpu));
    else
      message += label(last) + " would need " + format_bytes(need) + ", and there is no cpu budget";
    throw Error(message, {}, {}, "give cpu more memory, or add \"disk\" to the max memory to offload the rest to disk");
  }

  MaxMemory max_memory_;
  const MemoryNeeds& needs_;
  std::string kind_;
  PlacementUnits units_;
  std::vector<std::vector<size_t>> groups_;
  std::optional<Device> main_accelerator_;
  Device main_;
  std::vector<Device> devices_;  // placement order: accelerators with room, cpu, disk
};

}  // namespace

DeviceMap clean_in_placement_order(const DeviceMap& placed) {
  // The first placed entry under each prefix ("" covers all), found by walking
  // every entry's dotted prefixes once.
  std::unordered_map<std::string, size_t> first;
  for (size_t i = 0; i < placed.size(); ++i) {
    const std::string& name = placed[i].first;
    first.emplace(name, i);
    for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1))
      first.emplace(name.substr(0, dot), i);
    first.emplace(std::string(), i);
  }
  DeviceMap cleaned = clean_device_map(placed);
  std::stable_sort(cleaned.begin(), cleaned.end(), [&](const auto& a, const auto& b) {
    return first.at(a.first) < first.at(b.first);
  });
  return cleaned;
}

AutoPlan plan_auto(const ModuleTree& tree, const MaxMemory& max_memory, const std::vector<std::string>& no_split,
                   const SizeOptions& sizes, const MemoryNeeds& needs, std::string_view accelerator_kind,
                   std::optional<Device> main_device) {
  return AutoPlanner(tree, max_memory, no_split, sizes, needs, accelerator_kind, main_device).run();
}

}  // namespace strata::plan
