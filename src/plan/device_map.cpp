// A port of accelerate 0.33.0's infer_auto_device_map. The loop below keeps
// Accelerate's structure on purpose (one queue, one cursor over devices, three
// cases per queued entry) so that every quirk carries over: maps must match.
#include "plan/device_map.h"

#include <algorithm>
#include <deque>
#include <map>

#include "plan/clean_device_map.h"
#include "strata/error.h"

namespace strata::plan {
namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// The parameters tied to something in `name` but living outside it. Accelerate
// tests containment with trailing dots (`name + "." in k + "."`) so that
// `compute.weight` does not claim `compute.weight_submodule.parameter`.
std::vector<std::string> outside_tied_params(const std::string& name, const TiedGroups& tied) {
  const std::string needle = name + ".";
  std::vector<std::string> out;
  for (const auto& group : tied) {
    size_t inside = 0;
    for (const auto& k : group) inside += contains(k + ".", needle) ? 1 : 0;
    if (inside == 0 || inside == group.size()) continue;
    for (const auto& p : group)
      if (!contains(p + ".", needle)) out.push_back(p);
  }
  return out;
}

// Queue entries that are modules: the max layer is recomputed over those only.
std::vector<QueueItem> modules_only(const std::deque<QueueItem>& queue) {
  std::vector<QueueItem> out;
  for (const auto& q : queue)
    if (q.module != nullptr) out.push_back(q);
  return out;
}

// What splitting a module queues in its place: named_parameters(recurse=False)
// then named_children(). Its direct buffers are not queued, so they end up in
// no map entry (gpt2_split_attention_buffers_unmapped).
std::vector<QueueItem> split_entries(const QueueItem& item, const TiedIndex& tied_index) {
  std::vector<QueueItem> out;
  for (const TensorSpec* p : direct_params(*item.module, item.name, tied_index))
    out.push_back({join_name(item.name, p->name), nullptr});
  for (const auto& c : item.module->children) out.push_back({join_name(item.name, c.name), &c});
  return out;
}

bool splittable(const QueueItem& item, const std::vector<std::string>& no_split) {
  return item.module != nullptr && !item.module->children.empty() && !is_no_split(*item.module, no_split);
}

void assign(DeviceMap& map, const std::string& name, Device device) {
  // A Python dict assignment: an existing key keeps its place.
  for (auto& e : map)
    if (e.first == name) {
      e.second = device;
      return;
    }
  map.emplace_back(name, device);
}

// The state of the placement loop, so each of Accelerate's cases reads as one method.
class Planner {
 public:
  Planner(const ModuleTree& tree, const MaxMemory& max_memory, const InferOptions& options)
      : tree_(tree), options_(options), max_memory_(normalize_max_memory(max_memory)) {
    // Device list: the budget keys in order, disk appended when absent.
    for (const auto& [d, b] : max_memory_) devices_.push_back(d);
    if (devices_.empty() || !(devices_.back() == Device::disk_())) devices_.push_back(Device::disk_());
    for (const auto& d : devices_)
      if (d.is_gpu()) gpus_.push_back(d);
    // The "main devices" keep room for the largest layer, so that an offloaded
    // layer can be brought back to execute: the first GPU and the cpu.
    if (!gpus_.empty()) main_devices_.push_back(gpus_.front());
    main_devices_.push_back(Device::cpu_());
    sizes_ = compute_module_sizes(tree, options.sizes);
    tied_index_ = index_tied_groups(tree.tied);
    for (auto& q : initial_queue(tree)) queue_.push_back(std::move(q));
    max_layer_ = get_max_layer_size(queue_, sizes_, options.no_split_module_classes);
  }

  InferResult run() {
    while (!queue_.empty()) step();
    InferResult result;
    result.device_map = options_.clean_result ? clean_device_map(std::move(map_)) : std::move(map_);
    check_buffers(result);
    return result;
  }

 private:
  double budget(const Device& d) const {
    for (const auto& [dev, b] : max_memory_)
      if (dev == d) return b;
    return 0;
  }
  bool is_main(const Device& d) const {
    return std::find(main_devices_.begin(), main_devices_.end(), d) != main_devices_.end();
  }
  void recompute_max_layer() {
    max_layer_ = get_max_layer_size(modules_only(queue_), sizes_, options_.no_split_module_classes);
  }
  size_t queue_index(const std::string& name) const {
    for (size_t i = 0; i < queue_.size(); ++i)
      if (queue_[i].name == name) return i;
    return queue_.size();
  }

  void step() {
    QueueItem item = std::move(queue_.front());
    queue_.pop_front();
    const std::string& name = item.name;
    // The largest layer may have just been taken; once every name realizing it
    // is treated, recompute it over what is left (so the reserve can shrink).
    std::erase_if(max_layer_.names, [&](const std::string& n) { return n == name || n.rfind(name + ".", 0) == 0; });
    if (max_layer_.names.empty()) recompute_max_layer();

    const double module_size = sizes_.at(name);
    const std::vector<std::string> tied_params = outside_tied_params(name, tree_.tied);
    device_ = devices_[current_];
    unlimited_ = device_ == Device::disk_();
    max_size_ = unlimited_ ? 0 : budget(device_);
    reserved_ = 0;
    if (!unlimited_ && is_main(device_)) {
      max_size_ -= max_layer_.size;
      reserved_ = max_layer_.size;
    }

    if (!unlimited_ && used_ + module_size > max_size_) {
      too_big(std::move(item));
    } else if (!tied_params.empty()) {
      fits_with_ties(std::move(item), module_size, tied_params);
    } else {
      used_ += module_size;
      device_memory_used_[device_] = used_ + reserved_;
      map_.emplace_back(name, device_);
      count_buffers(item);
    }
  }

  // Case 1: too big for what is left here. Split it in place, or move on.
  void too_big(QueueItem item) {
    if (!splittable(item, options_.no_split_module_classes)) {
      next_device(std::move(item));
      return;
    }
    auto entries = split_entries(item, tied_index_);
    queue_.insert(queue_.begin(), entries.begin(), entries.end());
    recompute_max_layer();
  }

  // Case 2: it fits alone, but tied parameters elsewhere must come along, since
  // one tensor is stored once: place the modules holding them here too, now.
  void fits_with_ties(QueueItem item, double module_size, const std::vector<std::string>& tied_params) {
    std::vector<std::string> tied_names;
    std::vector<const ModuleNode*> tied_modules;
    double size_with_ties = module_size;
    for (const auto& tp : tied_params) {
      // Accelerate picks the first queued entry whose name is a substring of the tied parameter.
      auto it = std::find_if(queue_.begin(), queue_.end(), [&](const QueueItem& q) { return contains(tp, q.name); });
      if (it == queue_.end())
        throw Error("tied parameter '" + tp + "' is in no module left to place", {}, tp,
                    "the tied groups do not match the module tree");
      tied_names.push_back(it->name);
      tied_modules.push_back(it->module);
      size_with_ties += sizes_.at(it->name) - sizes_.at(tp);
    }

    if (unlimited_ || used_ + size_with_ties <= max_size_) {
      used_ += size_with_ties;
      device_memory_used_[device_] = used_ + reserved_;
      map_.emplace_back(item.name, device_);
      for (const auto& tn : tied_names) {
        if (size_t i = queue_index(tn); i < queue_.size()) queue_.erase(queue_.begin() + static_cast<long>(i));
        assign(map_, tn, device_);
      }
      count_buffers(item);
      return;
    }

    // Together they do not fit: split the first splittable tied module and retry.
    for (size_t t = 0; t < tied_names.size(); ++t) {
      QueueItem tied_item{tied_names[t], tied_modules[t]};
      if (!splittable(tied_item, options_.no_split_module_classes)) continue;
      const size_t idx = queue_index(tied_item.name);
      auto entries = split_entries(tied_item, tied_index_);
      queue_.erase(queue_.begin() + static_cast<long>(idx));
      queue_.insert(queue_.begin() + static_cast<long>(idx), entries.begin(), entries.end());
      queue_.push_front(std::move(item));
      recompute_max_layer();
      return;
    }
    next_device(std::move(item));
  }

  void next_device(QueueItem item) {
    device_memory_used_[device_] = used_ + reserved_;
    ++current_;
    used_ = 0;
    queue_.push_front(std::move(item));
  }

  void count_buffers(const QueueItem& item) {
    // Only whole modules count their buffers; a bare tensor does not (Accelerate
    // checks isinstance(module, nn.Module)).
    if (options_.offload_buffers || item.module == nullptr) return;
    buffer_sizes_[device_] += compute_module_total_buffer_size(*item.module, options_.sizes);
  }

  void check_buffers(InferResult& result) const {
    double off = 0;
    if (auto it = buffer_sizes_.find(Device::cpu_()); it != buffer_sizes_.end()) off += it->second;
    if (auto it = buffer_sizes_.find(Device::disk_()); it != buffer_sizes_.end()) off += it->second;
    result.offloaded_buffer_bytes = off;
    if (!(off > 0) || options_.offload_buffers) return;
    bool fits_any = false;
    for (const auto& [d, b] : max_memory_) {
      if (!d.is_gpu()) continue;
      auto it = device_memory_used_.find(d);
      const double used = it == device_memory_used_.end() ? 0 : it->second;
      if (b >= off + used) fits_any = true;
    }
    result.buffer_warning = !gpus_.empty() && !fits_any;
  }

  const ModuleTree& tree_;
  const InferOptions& options_;
  MaxMemory max_memory_;
  std::vector<Device> devices_, gpus_, main_devices_;
  ModuleSizes sizes_;
  TiedIndex tied_index_;
  std::deque<QueueItem> queue_;
  MaxLayer max_layer_;
  DeviceMap map_;
  std::map<Device, double> device_memory_used_, buffer_sizes_;
  size_t current_ = 0;
  double used_ = 0;  // current_memory_used in Accelerate
  // Per-step view of the current device.
  Device device_{};
  bool unlimited_ = false;
  double max_size_ = 0, reserved_ = 0;
};

}  // namespace

InferResult infer_auto_device_map(const ModuleTree& tree, const MaxMemory& max_memory, const InferOptions& options) {
  return Planner(tree, max_memory, options).run();
}

}  // namespace strata::plan
