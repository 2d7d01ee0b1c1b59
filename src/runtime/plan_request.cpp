#include "runtime/plan_request.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/byte_size.h"
#include "core/files.h"
#include "core/system_memory.h"
#include "format/direct_reader.h"
#include "models/architecture.h"
#include "models/memory_needs.h"
#include "models/module_tree.h"
#include "plan/device_map.h"
#include "plan/max_memory.h"
#include "plan/plan_map.h"
#include "runtime/offload_compute.h"
#include "runtime/placement.h"
#include "strata/error.h"

namespace strata {
namespace {

using Json = nlohmann::ordered_json;

const char* kStrategies = "auto, sequential, balanced, balanced_low_0";

// Without --max-memory: every accelerator's capacity, 90% of the RAM
// available now, and the disk (plan::default_max_memory).
plan::MaxMemory budgets_from_devices(DeviceSet& devices) {
  std::vector<std::pair<plan::Device, double>> capacities;
  for (const auto& a : devices.accelerators())
    capacities.emplace_back(plan::Device::gpu_(a->ordinal()), static_cast<double>(a->capacity()));
  return plan::default_max_memory(capacities, static_cast<double>(available_ram_bytes()));
}

std::string bill(const plan::DeviceUse& use) {
  return format_bytes(use.total()) + " (weights " + format_bytes(use.weights) + " + KV cache and runtime " +
         format_bytes(use.runtime) + " + activations " + format_bytes(use.activations) + " + staging " +
         format_bytes(use.staging) + ")";
}

// Every device's share must fit both its budget and, for an accelerator, its
// capacity: a map that does not fails now, not halfway through loading, and
// the budgets become hard limits of the devices (DESIGN.md: peak bytes never
// exceed max-memory).
void check_and_limit(const plan::MapUsage& usage, const plan::MaxMemory& budgets, DeviceSet& devices,
                     const std::string& strategy) {
  // Without a cpu key the host holds no weights and is not budgeted.
  auto budgeted = [&](const plan::Device& d) {
    return d.is_gpu() || std::any_of(budgets.begin(), budgets.end(), [&](const auto& b) { return b.first == d; });
  };
  for (const plan::DeviceUse& use : usage.devices) {
    if (use.device == plan::Device::disk_() || !budgeted(use.device)) continue;
    Device& d = devices.resolve(use.device);
    const double budget = plan::budget_of(budgets, use.device);
    const double limit = std::min(budget, static_cast<double>(d.capacity()));
    if (use.total() > limit) {
      const bool weights_only = strategy == "sequential" || strategy == "balanced" || strategy == "balanced_low_0";
      throw Error(d.name() + " cannot hold its share of the device map: it needs at least " + bill(use) + ", has " +
                      format_bytes(limit) + (budget < static_cast<double>(d.capacity()) ? " (its budget)" : ""),
                  "", "",
                  weights_only ? "Accelerate's strategies budget weights only; use --device-map auto, or raise "
                                 "--max-memory"
                               : "give it more memory (--max-memory, --sim-devices), or let --device-map auto "
                                 "place less there");
    }
  }
  for (Device* d : devices.all()) {
    const plan::Device key = d->is_accelerator() ? plan::Device::gpu_(d->ordinal()) : plan::Device::cpu_();
    const double budget = plan::budget_of(budgets, key);
    if (budgeted(key) && budget < static_cast<double>(d->capacity())) d->limit_capacity(static_cast<uint64_t>(budget));
  }
}

}  // namespace

plan::DeviceMap parse_device_map(const std::string& text_or_file) {
  std::string text = text_or_file;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || text[first] != '{') {
    try {
      text = read_file(text_or_file, "the device map");
    } catch (const Error&) {
      throw Error("--device-map '" + text_or_file + "' is no strategy, JSON map or readable file", "", "",
                  std::string("give one of ") + kStrategies + ", a JSON object such as {\"\": \"cpu\"}, or a file");
    }
  }
  Json j;
  try {
    j = Json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("the device map is not valid JSON: ") + e.what(), text_or_file);
  }
  if (!j.is_object()) throw Error("the device map must be a JSON object {module: device}", text_or_file);
  plan::DeviceMap map;
  for (const auto& [key, value] : j.items()) {
    if (value.is_number_integer()) {
      const int64_t ordinal = value.get<int64_t>();
      if (ordinal < 0 || ordinal > 1'000'000)
        throw Error("device map entry '" + key + "' names accelerator " + std::to_string(ordinal) +
                        ", which cannot exist",
                    text_or_file);
      map.emplace_back(key, plan::Device::gpu_(static_cast<int>(ordinal)));
    }
    else if (value.is_string())
      map.emplace_back(key, plan::parse_device(value.get<std::string>()));
    else
      throw Error("device map entry '" + key + "' must be a device: an ordinal, \"sim:N\", \"cpu\" or \"disk\"",
                  text_or_file);
  }
  if (map.empty()) throw Error("the device map is empty", text_or_file, "", "map \"\" to a device to place everything");
  return map;
}

namespace {

// The device offloaded modules run on when it is decided before planning:
// --main-device, --offload-compute local, or auto's measurement when the
// main accelerator is a GPU and the weights outgrow the accelerators.
std::optional<plan::Device> decide_main_device(const Checkpoint& checkpoint, const ModelOptions& options,
                                               const plan::MaxMemory& budgets, DeviceSet& devices, ThreadPool& pool,
                                               std::string& choice) {
  if (!options.main_device.empty()) {
    const plan::Device main = plan::parse_device(options.main_device);
    if (!main.is_gpu() && !(main == plan::Device::cpu_()))
      throw Error("--main-device must be an accelerator or cpu, not " + options.main_device);
    if (main.is_gpu()) devices.resolve(main);
    return main;
  }
  const OffloadCompute mode = parse_offload_compute(options.offload_compute);
  if (mode == OffloadCompute::local) return plan::Device::cpu_();  // offloaded blocks run on the CPU
  const std::optional<plan::Device> accelerator = plan::main_accelerator_of(budgets);
  if (mode == OffloadCompute::stream || !accelerator) return std::nullopt;
  Device& gpu = devices.resolve(*accelerator);
  // Simulated devices exist to exercise streaming: they always stream.
  if (gpu.host_addressable()) return std::nullopt;
  double accelerator_bytes = 0, weight_bytes = 0;
  for (const auto& [device, budget] : budgets)
    if (device.is_gpu()) accelerator_bytes += budget;
  DType dtype = DType::F32;
  for (const TensorInfo& t : checkpoint.tensors()) {
    weight_bytes += static_cast<double>(t.nbytes);
    if (t.shape.size() == 2) dtype = t.dtype;
  }
  if (weight_bytes <= accelerator_bytes) return std::nullopt;  // nothing is likely to be offloaded
  const OffloadRates rates = measure_offload_rates(gpu, pool, options.dtype.value_or(dtype), options.batch);
  const bool local = local_is_faster(rates);
  choice = describe_offload_choice(local, gpu.name(), rates, options.batch);
  // Streaming keeps the usual main device (the planner's, or the map's first accelerator).
  return local ? std::optional(plan::Device::cpu_()) : std::nullopt;
}

// Where the experts of accelerator layers that lie in RAM run (see
// offload_compute.h): forced, or measured when a GPU has some. Simulated
// devices stream under auto, as for the blocks.
void decide_expert_compute(OffloadCompute mode, const Checkpoint& checkpoint, const ModelOptions& options,
                           DeviceSet& devices, ThreadPool& pool, PlannedMap& p) {
  if (!p.usage.experts_off_accelerator || mode == OffloadCompute::stream) return;
  if (mode == OffloadCompute::local) {
    p.expert_local_tokens = kAlwaysLocal;
    return;
  }
  if (options.expert_local_tokens) {
    p.expert_local_tokens = *options.expert_local_tokens;
    return;
  }
  if (!p.main_accelerator) return;
  Device& gpu = devices.resolve(*p.main_accelerator);
  if (gpu.host_addressable()) return;
  DType dtype = DType::F32;
  for (const TensorInfo& t : checkpoint.tensors())
    if (t.shape.size() == 2) dtype = t.dtype;
  ExpertComputeChoice choice = measure_expert_compute(gpu, pool, options.dtype.value_or(dtype));
  p.expert_local_tokens = choice.local_tokens;
  p.expert_choice = std::move(choice.text);
}

}  // namespace

void add_runtime_buffers(plan::MemoryNeeds& needs) {
  needs.disk_read_slots = static_cast<int>(kDiskReadSlots);
  needs.staging_slots = static_cast<int>(kStagingSlots);
  // The weight store reads disk tensors into page-aligned spans: up to one
  // block of alignment before and after each.
  needs.disk_read_slack = 2.0 * DirectReader::kAlign;
}

PlannedMap plan_device_map(const ModelConfig& config, const Checkpoint& checkpoint, const QuantizedWeights& quantized,
                           const ModelOptions& options, DeviceSet& devices, ThreadPool& pool) {
  const int threads = pool.size();
  const std::string fallback_dtype = config.torch_dtype.empty() ? "float32" : config.torch_dtype;
  auto dtype_of = [&](const std::string& name) {
    const TensorInfo* t = checkpoint.find(name);
    return t && is_float(t->dtype) && t->dtype != DType::F64 ? torch_dtype_name(t->dtype) : fallback_dtype;
  };
  QuantizedOf quantized_of;
  if (quantized.any()) quantized_of = [&](const std::string& name) { return quantized.layout_of(name); };
  PlannedMap p;
  p.tree = module_tree_for(config, dtype_of, quantized_of);
  const auto no_split = no_split_classes_for(config);
  plan::SizeOptions sizes;
  if (options.dtype) sizes.dtype = torch_dtype_name(*options.dtype);
  const int64_t ctx = options.ctx > 0 ? options.ctx : std::min<int64_t>(config.max_position_embeddings, 2048);
  // Learned positions (GPT-2) end at the table's last row: say so before
  // loading, not after the first tokens have been generated.
  if (describe(config).forward.positions == Positions::learned && ctx > config.max_position_embeddings)
    throw Error("a context of " + std::to_string(ctx) + " tokens is longer than the " +
                    std::to_string(config.max_position_embeddings) + " positions this model has learned",
                "", "", "ask for fewer tokens (prompt plus --max-new-tokens, or --ctx)");
  plan::MemoryNeeds needs = memory_needs(config, dtype_of, sizes.dtype, ctx, options.batch, threads, options.all_logits, quantized_of);
  add_runtime_buffers(needs);
  if (options.expert_cache > 0 && config.num_experts > 0)
    needs.host_expert_cache = needs.device_expert_cache = static_cast<int>(std::min<int64_t>(options.expert_cache, 1 << 20));
  const OffloadCompute mode = parse_offload_compute(options.offload_compute);
  if (mode == OffloadCompute::local) needs.device_expert_cache = 0;  // no expert is ever copied

  p.max_memory = options.max_memory.empty() ? budgets_from_devices(devices) : plan::parse_max_memory(options.max_memory);
  for (const auto& [device, budget] : p.max_memory)
    if (device.is_gpu()) devices.resolve(device);  // an ordinal that does not exist is an error now

  const std::optional<plan::Device> main =
      decide_main_device(checkpoint, options, p.max_memory, devices, pool, p.offload_choice);
  const std::string& strategy = options.device_map.empty() ? std::string("auto") : options.device_map;
  plan::MapRequest request;
  request.tree = &p.tree;
  request.no_split = no_split;
  request.sizes = sizes;
  request.needs = needs;
  request.max_memory = p.max_memory;
  request.strategy = strategy;
  request.accelerator_kind = devices.accelerator_kind();
  request.main_device = main;
  // A device holds no more than its budget and its capacity.
  request.limit = [&](const plan::Device& d) {
    const double budget = plan::budget_of(p.max_memory, d);
    return d.is_gpu() ? std::min(budget, static_cast<double>(devices.resolve(d).capacity())) : budget;
  };
  if (strategy != "auto" && strategy != "sequential" && strategy != "balanced" && strategy != "balanced_low_0") {
    request.strategy = "given";
    request.given = parse_device_map(strategy);
  }
  plan::MapPlan planned = plan::plan_map(request);
  p.source = request.strategy == "given" ? "user map" : strategy;
  p.device_map = std::move(planned.device_map);
  p.main_accelerator = planned.main_accelerator;
  p.usage = std::move(planned.usage);
  p.staging_slots = static_cast<size_t>(planned.staging_slots);
  p.host_expert_cache = static_cast<size_t>(needs.host_expert_cache);
  p.device_expert_cache = static_cast<size_t>(needs.device_expert_cache);
  check_and_limit(p.usage, p.max_memory, devices, strategy);
  decide_expert_compute(mode, checkpoint, options, devices, pool, p);
  if (p.staging_slots == 1 && options.warning)
    options.warning(
        "the accelerator has room for one staging slot only: offloaded layers are copied to it in turn with its "
        "compute, not beside it");
  return p;
}

}  // namespace strata
