#include "plan/max_memory.h"

#include <cctype>
#include <limits>
#include <string>

#include "core/byte_size.h"
#include "strata/error.h"

namespace strata::plan {
namespace {

constexpr const char* kHint = "write it like 0=8GiB,1=8GiB,cpu=30GiB,disk";

}  // namespace

MaxMemory parse_max_memory(std::string_view text) {
  MaxMemory out;
  std::vector<std::string> keys;  // as written, parallel to out, for the "twice" message
  size_t at = 0;
  while (at <= text.size()) {
    size_t comma = text.find(',', at);
    if (comma == std::string_view::npos) comma = text.size();
    const std::string_view item = trim_space(text.substr(at, comma - at));
    at = comma + 1;
    const std::string where = "max memory '" + std::string(text) + "'";
    if (item.empty()) throw Error(where + " has an empty item", {}, {}, kHint);

    const size_t eq = item.find('=');
    const std::string key(trim_space(item.substr(0, eq)));
    const bool has_size = eq != std::string_view::npos;
    const std::string_view size = has_size ? trim_space(item.substr(eq + 1)) : std::string_view{};
    Device device;
    try {
      device = parse_device(key);
    } catch (const Error&) {
      throw Error(where + ": unknown device '" + key + "'", {}, {},
                  "devices are accelerator ordinals (0, cuda:0, sim:0), cpu and disk; " + std::string(kHint));
    }
    for (size_t i = 0; i < out.size(); ++i)
      if (out[i].first == device)
        throw Error(where + " gives device " + key + " twice" + (keys[i] != key ? " (as " + keys[i] + ")" : ""),
                    {}, {}, kHint);

    double budget = std::numeric_limits<double>::infinity();
    if (device.kind != Device::disk) {
      if (!has_size || size.empty())
        throw Error(where + ": no size for " + key, {}, {}, "give one like " + key + "=8GiB; only disk has none");
      try {
        budget = static_cast<double>(parse_byte_size(size, /*allow_zero=*/true));
      } catch (const Error& e) {
        throw Error(where + ": " + e.message() + " for " + key, {}, {}, e.hint());
      }
    } else if (has_size) {
      // Validated even though it is ignored, so a typo does not pass silently.
      try {
        parse_byte_size(size, /*allow_zero=*/true);
      } catch (const Error& e) {
        throw Error(where + ": " + e.message() + " for disk", {}, {}, "disk is unlimited; 'disk' alone is enough");
      }
    }
    out.emplace_back(device, budget);
    keys.push_back(key);
  }
  return normalize_max_memory(std::move(out));
}

std::optional<Device> main_accelerator_of(const MaxMemory& max_memory) {
  std::optional<Device> best;
  for (const auto& [d, b] : max_memory)
    if (d.is_gpu() && b > 0 && (!best || d < *best)) best = d;
  return best;
}

double budget_of(const MaxMemory& max_memory, const Device& device) {
  if (device.kind == Device::disk) return std::numeric_limits<double>::infinity();
  for (const auto& [d, b] : max_memory)
    if (d == device) return b;
  return 0;
}

}  // namespace strata::plan
