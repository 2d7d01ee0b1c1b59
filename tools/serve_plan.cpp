#include "serve_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "backend/cpu/memory_bandwidth.h"
#include "io_bandwidth.h"
#include "runtime/model_impl.h"
#include "runtime/offload_compute.h"

namespace strata::cli::serve {

using json = nlohmann::json;

namespace {

// Each rate is measured on at most this many bytes, so the start stays short.
constexpr uint64_t kSampleBytes = uint64_t{256} << 20;

// The host's read rate on the model's own resident weights (their physical
// placement sets it, see memory_bandwidth.h), or on a fresh buffer when
// nothing is resident.
double host_read_rate(Model& model) {
  ThreadPool& pool = *model.impl().pool;
  std::vector<std::span<const uint8_t>> sample;
  uint64_t bytes = 0;
  for (const auto& range : model.impl().weights->resident_host_ranges()) {
    if (bytes >= kSampleBytes) break;
    const size_t take = static_cast<size_t>(std::min<uint64_t>(range.size(), kSampleBytes - bytes));
    sample.push_back(range.subspan(0, take));
    bytes += take;
  }
  // Too little to outgrow the caches says nothing about RAM.
  if (bytes < (uint64_t{32} << 20)) return cpu::measure_read_bandwidth(pool, kSampleBytes, 2).best_bytes_per_second;
  return cpu::measure_read_bandwidth(pool, sample, 2).best_bytes_per_second;
}

double disk_read_rate(Model& model) {
  const auto& ranges = model.impl().weights->disk_ranges();
  return ranges.empty() ? 0.0 : measure_direct_read(ranges, kSampleBytes);
}

double copy_rate(Model& model) {
  if (model.copied_bytes_per_pass() == 0) return 0.0;
  for (const BlockPlacement& p : model.impl().executor->placement())
    if (p.exec->is_accelerator()) return measure_copy_in(*p.exec, kSampleBytes, 3);
  return 0.0;
}

json finite_or_null(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }

}  // namespace

json measure_plan(Model& model, const SchedulerOptions& options) {
  json devices = json::array();
  for (const DeviceReport& d : model.devices())
    devices.push_back({{"name", d.name},
                       {"budget", finite_or_null(d.budget)},
                       {"capacity", d.capacity == UINT64_MAX ? json(nullptr) : json(d.capacity)},
                       {"modules", d.modules},
                       {"weight_bytes", d.weight_bytes},
                       {"planned_bytes", d.planned_bytes},
                       {"runs_offloaded", d.runs_offloaded}});

  const auto host_bytes = static_cast<double>(model.host_computed_bytes_per_token());
  const auto disk_bytes = static_cast<double>(model.disk_bytes_per_pass());
  const auto copied_bytes = static_cast<double>(model.copied_bytes_per_pass());
  const double host_rate = host_bytes > 0 ? host_read_rate(model) : 0.0;
  const double disk_rate = disk_bytes > 0 ? disk_read_rate(model) : 0.0;
  const double copy = copied_bytes > 0 ? copy_rate(model) : 0.0;

  // Reading RAM, reading the disk and copying to accelerators overlap, so a
  // step takes at least as long as the slowest of them (bench's bound). A
  // step makes one token for every sequence in the batch.
  auto ms = [](double bytes, double rate) { return bytes > 0 && rate > 0 ? 1000.0 * bytes / rate : 0.0; };
  const double host_ms = ms(host_bytes, host_rate), disk_ms = ms(disk_bytes, disk_rate), copy_ms = ms(copied_bytes, copy);
  const double step_ms = std::max({host_ms, disk_ms, copy_ms});
  const char* bound_by = step_ms == 0 ? "nothing measured (the accelerators hold every weight)"
                         : step_ms == host_ms ? "host memory"
                         : step_ms == disk_ms ? "disk"
                                              : "copies to the accelerator";
  const double per_sequence = step_ms > 0 ? 1000.0 / step_ms : 0.0;
  return {{"device_map", json::parse(model.device_map_json(), nullptr, false)},
          {"plan_source", model.plan_source()},
          {"compute", model.compute_description()},
          {"devices", devices},
          {"slots", options.slots},
          {"context", options.context},
          {"bytes_per_token",
           {{"weights", model.weight_bytes_per_token()},
            {"host", model.host_computed_bytes_per_token()},
            {"disk", model.disk_bytes_per_pass()},
            {"copied", model.copied_bytes_per_pass()}}},
          {"measured_bytes_per_second", {{"host", host_rate}, {"disk", disk_rate}, {"copy", copy}}},
          {"expected",
           {{"step_ms", step_ms},
            {"bound_by", bound_by},
            {"tokens_per_second_one_sequence", per_sequence},
            {"tokens_per_second_all_slots", per_sequence * static_cast<double>(options.slots)},
            {"note", "a bound from bytes and measured rates: compute and attention, which grow with the batch and "
                     "the context, come on top"}}}};
}

}  // namespace strata::cli::serve
