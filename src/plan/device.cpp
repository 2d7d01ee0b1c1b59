#include "plan/device.h"

#include <algorithm>
#include <cctype>

#include "strata/error.h"

namespace strata::plan {

Device parse_device(const std::string& text) {
  if (text == "cpu") return Device::cpu_();
  if (text == "disk") return Device::disk_();
  if (!text.empty() && text.size() < 9 &&
      std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c) != 0; }))
    return Device::gpu_(std::stoi(text));
  throw Error("unknown device '" + text + "'", {}, {}, "expected a GPU ordinal, 'cpu' or 'disk'");
}

MaxMemory normalize_max_memory(MaxMemory max_memory) {
  // get_max_memory: ints sorted first, then "cpu", "disk" whatever the key order.
  std::stable_sort(max_memory.begin(), max_memory.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < max_memory.size(); ++i) {
    if (i > 0 && max_memory[i].first == max_memory[i - 1].first)
      throw Error("max_memory lists device " + max_memory[i].first.to_string() + " twice");
    if (!(max_memory[i].second >= 0))
      throw Error("max_memory for " + max_memory[i].first.to_string() + " must be a non-negative byte count");
  }
  return max_memory;
}

}  // namespace strata::plan
