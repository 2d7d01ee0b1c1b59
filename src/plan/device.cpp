#include "plan/device.h"

#include <algorithm>
#include <cctype>

#include "strata/error.h"

namespace strata::plan {
namespace {

bool all_digits(std::string_view text) {
  // Nine digits at most, so std::stoi cannot overflow.
  return !text.empty() && text.size() < 9 &&
         std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

}  // namespace

Device parse_device(const std::string& text) {
  if (text == "cpu") return Device::cpu_();
  if (text == "disk") return Device::disk_();
  if (all_digits(text)) return Device::gpu_(std::stoi(text));
  // strata's own spellings of an accelerator ordinal; the planner only needs
  // the ordinal, the runtime decides which backend it is.
  for (std::string_view kind : {"cuda:", "sim:"}) {
    const std::string_view rest = std::string_view(text).substr(std::min(text.size(), kind.size()));
    if (text.rfind(kind, 0) == 0 && all_digits(rest)) return Device::gpu_(std::stoi(std::string(rest)));
  }
  throw Error("unknown device '" + text + "'", {}, {},
              "expected an accelerator ordinal (0, cuda:0, sim:0), 'cpu' or 'disk'");
}

std::string device_label(const Device& d, std::string_view accelerator_kind) {
  if (!d.is_gpu() || accelerator_kind.empty()) return d.to_string();
  return std::string(accelerator_kind) + ":" + std::to_string(d.index);
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
