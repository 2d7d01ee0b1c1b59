#include "plan/clean_device_map.h"

#include <algorithm>
#include <string>
#include <unordered_set>

namespace strata::plan {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// The first `parts` dotted components of `name`.
std::string first_components(const std::string& name, size_t parts) {
  size_t pos = 0;
  for (size_t i = 0; i < parts; ++i) {
    pos = name.find('.', pos);
    if (pos == std::string::npos) return name;
    if (i + 1 < parts) ++pos;
  }
  return name.substr(0, pos);
}

void clean(DeviceMap& map, const std::string& module_name) {
  const std::string prefix = module_name.empty() ? "" : module_name + ".";
  // If every key under this module lands on one device, and there is more than
  // one key, replace them by the module itself (appended, like a dict insert).
  size_t count = 0;
  bool same = true;
  Device first{};
  for (const auto& [k, v] : map) {
    if (!starts_with(k, prefix)) continue;
    if (count == 0) first = v;
    else if (!(v == first)) same = false;
    ++count;
  }
  if (same && count > 1) {
    DeviceMap kept;
    kept.reserve(map.size() - count + 1);
    for (auto& e : map)
      if (!starts_with(e.first, prefix)) kept.push_back(std::move(e));
    kept.emplace_back(module_name, first);
    map = std::move(kept);
  }
  // Recurse over the direct children named by the remaining keys.
  const size_t depth = module_name.empty() ? 1 : std::count(module_name.begin(), module_name.end(), '.') + 2;
  std::vector<std::string> children;
  std::unordered_set<std::string> seen;
  for (const auto& [k, v] : map) {
    if (!starts_with(k, prefix) || k.size() <= module_name.size()) continue;
    std::string child = first_components(k, depth);
    if (seen.insert(child).second) children.push_back(std::move(child));
  }
  for (const auto& child : children) clean(map, child);
}

}  // namespace

DeviceMap clean_device_map(DeviceMap device_map) {
  clean(device_map, "");
  return device_map;
}

}  // namespace strata::plan
