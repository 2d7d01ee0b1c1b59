// strata map: the device map strata (or Accelerate) would use for a model and
// a memory budget, with what it costs on each device. Plans from a checkpoint's
// headers (-m), from config.json alone (--config: a 400B model plans in
// milliseconds), or from a module tree in the fixture format (--tree). The
// planning itself is pure (src/plan); this file reads inputs and prints.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "commands.h"
#include "core/byte_size.h"
#include "core/files.h"
#include "core/system_memory.h"
#include "format/quantized_checkpoint.h"
#include "format/safetensors.h"
#include "models/architecture.h"
#include "models/memory_needs.h"
#include "models/module_tree.h"
#include "plan/device_map.h"
#include "plan/map_usage.h"
#include "plan/max_memory.h"
#include "plan/plan_map.h"
#include "runtime/plan_request.h"
#include "runtime/quantized_weights.h"
#include "strata/error.h"
#include "strata/model_config.h"

namespace strata::cli {
namespace {

using Json = nlohmann::ordered_json;

struct MapArgs {
  std::string model_dir, config_path, tree_path;
  std::string max_memory, strategy = "auto", no_split, dtype, accelerators, quantize;
  int64_t ctx = 0, batch = 1;
  int threads = 0;
  bool json = false, quantize_all = false;
  CLI::Option *strategy_opt = nullptr, *no_split_opt = nullptr, *dtype_opt = nullptr;
};

// Everything one planning run needs, from whichever source was given.
struct Request {
  plan::ModuleTree tree;
  std::vector<std::string> no_split;
  plan::SizeOptions sizes;
  std::optional<plan::MaxMemory> max_memory;
  std::string strategy = "auto";
  bool offload_buffers = false;
  plan::MemoryNeeds needs;  // empty for --tree: no KV or activation model
  std::string summary;      // one line saying what is planned
};

// --dtype accepts torch names and the short ones strata synth uses.
std::string torch_dtype_flag(const std::string& text) {
  if (text == "bf16" || text == "bfloat16") return "bfloat16";
  if (text == "f16" || text == "fp16" || text == "float16") return "float16";
  if (text == "f32" || text == "fp32" || text == "float32") return "float32";
  throw Error("unknown dtype '" + text + "'", "", "", "use bfloat16, float16 or float32 (or bf16, f16, f32)");
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// -m DIR or --config FILE: the tree transformers would build, plus the KV and
// activation needs of the requested context.
Request from_config(const MapArgs& a) {
  const bool from_dir = !a.model_dir.empty();
  const std::filesystem::path dir(a.model_dir);
  const ModelConfig config = ModelConfig::from_file(from_dir ? dir / "config.json" : std::filesystem::path(a.config_path));
  const std::string config_dtype = config.torch_dtype.empty() ? "float32" : config.torch_dtype;
  plan::dtype_byte_size(config_dtype);  // throws for a torch_dtype it does not know
  std::function<std::string(const std::string&)> dtype_of = [config_dtype](const std::string&) { return config_dtype; };
  QuantizedOf quantized_of;  // -m DIR: the held bytes of the matrices held quantized
  if (!from_dir && !a.quantize.empty()) throw Error("--quantize needs -m DIR", "", "", "plan the model folder itself");
  if (a.quantize_all && a.quantize.empty()) throw Error("--quantize-all needs --quantize", "", "", "add --quantize int8 or int4");
  if (from_dir) {
    // Headers only: each tensor's own dtype, as the checkpoint stores it.
    auto checkpoint = std::make_shared<Checkpoint>(Checkpoint::open(dir));
    check_layer_count(config, *checkpoint);
    dtype_of = [checkpoint, config_dtype](const std::string& name) {
      const TensorInfo* t = checkpoint->find(name);
      return t && is_float(t->dtype) ? torch_dtype_name(t->dtype) : config_dtype;
    };
    // Loading asks the same object, so the plan is the one loading makes.
    auto quantized = std::make_shared<QuantizedWeights>(config, *checkpoint, read_quant_scheme(dir, *checkpoint),
                                                        parse_quantize(a.quantize), a.quantize_all);
    if (quantized->any())
      quantized_of = [quantized](const std::string& name) { return quantized->layout_of(name); };
  }
  Request r;
  r.tree = module_tree_for(config, dtype_of, quantized_of);
  r.no_split = no_split_classes_for(config);
  std::optional<std::string> weights_dtype;
  if (!a.dtype.empty()) weights_dtype = r.sizes.dtype = torch_dtype_flag(a.dtype);
  const int64_t ctx = a.ctx > 0 ? a.ctx : std::min<int64_t>(2048, config.max_position_embeddings);
  const int threads = a.threads > 0 ? a.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  r.needs = memory_needs(config, dtype_of, weights_dtype, ctx, a.batch, threads, false, quantized_of);
  add_runtime_buffers(r.needs);
  r.summary = config.architecture + ", " + std::to_string(config.num_layers) + " layers, ctx " + std::to_string(ctx) +
              ", batch " + std::to_string(a.batch);
  return r;
}

plan::MaxMemory max_memory_of_json(const Json& j) {
  if (!j.is_object()) throw Error("max_memory must be an object of device -> bytes");
  plan::MaxMemory mm;
  for (const auto& [k, v] : j.items()) {
    const plan::Device d = plan::parse_device(k);
    double bytes = std::numeric_limits<double>::infinity();
    if (v.is_number()) bytes = v.get<double>();
    else if (v.is_string()) bytes = static_cast<double>(parse_byte_size(v.get<std::string>(), true));
    else if (d.kind != plan::Device::disk) throw Error("max_memory['" + k + "'] must be a byte count");
    mm.emplace_back(d, d.kind == plan::Device::disk ? std::numeric_limits<double>::infinity() : bytes);
  }
  return plan::normalize_max_memory(std::move(mm));
}

// --tree FILE: a planning request in the fixture-case format.
Request from_tree_file(const MapArgs& a) {
  Json j;
  try {
    j = Json::parse(read_file(a.tree_path, "the tree file"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("invalid JSON: ") + e.what(), a.tree_path);
  }
  if (!j.is_object() || !j.contains("tree")) throw Error("expected an object with a \"tree\"", a.tree_path);
  Request r;
  try {
    r.tree.root = plan::parse_module_tree_json(j["tree"].dump());
    const Json tied = j.value("tied", Json::array()), special = j.value("special_dtypes", Json::object());
    for (const auto& g : tied) r.tree.tied.push_back(g.get<std::vector<std::string>>());
    if (j.contains("max_memory") && !j["max_memory"].is_null()) r.max_memory = max_memory_of_json(j["max_memory"]);
    r.no_split = j.value("no_split_module_classes", std::vector<std::string>{});
    r.strategy = j.value("strategy", std::string("auto"));
    r.offload_buffers = j.value("offload_buffers", false);
    if (j.contains("dtype") && !j["dtype"].is_null()) r.sizes.dtype = j["dtype"].get<std::string>();
    for (const auto& [k, v] : special.items())
      r.sizes.special_dtypes[k] = v.get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("malformed planning request: ") + e.what(), a.tree_path);
  }
  if (!a.dtype.empty()) r.sizes.dtype = torch_dtype_flag(a.dtype);
  r.summary = "module tree " + a.tree_path + " (weights only: no KV or activation model)";
  return r;
}

// The planned map, where offloaded modules execute, and the bill: the
// function loading uses (plan/plan_map.h).
plan::MapPlan plan_request(const Request& r, const plan::MaxMemory& mm, const std::string& kind) {
  plan::MapRequest request;
  request.tree = &r.tree;
  request.no_split = r.no_split;
  request.sizes = r.sizes;
  request.needs = r.needs;
  request.max_memory = mm;
  request.strategy = r.strategy;
  request.offload_buffers = r.offload_buffers;
  request.accelerator_kind = kind;
  plan::MapPlan p = plan::plan_map(request);
  if (p.staging_slots == 1)
    std::fprintf(stderr, "strata: the accelerator has room for one staging slot only: offloaded layers would be "
                         "copied to it in turn with its compute, not beside it\n");
  return p;
}

// "model.layers.7" -> ("model.layers", 7); nullopt when not numbered.
std::optional<std::pair<std::string, long>> numbered(const std::string& name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos || dot + 1 == name.size() || name.size() - dot > 10) return std::nullopt;
  for (size_t i = dot + 1; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
  return std::make_pair(name.substr(0, dot), std::stol(name.substr(dot + 1)));
}

// The device of `module` under the map: the longest key that covers it.
const plan::Device* device_of(const plan::DeviceMap& map, const std::string& module) {
  const plan::Device* found = nullptr;
  size_t longest = 0;
  for (const auto& [key, device] : map)
    if ((key.empty() || key == module || module.rfind(key + ".", 0) == 0) && (!found || key.size() >= longest)) {
      found = &device;
      longest = key.size();
    }
  return found;
}

// How many routed experts of each layer sit on each device, runs of layers
// with the same counts on one line.
void print_experts(const Request& r, const plan::MapPlan& o, const std::string& kind) {
  if (r.needs.experts.empty()) return;
  std::vector<std::string> layers;
  std::vector<std::map<std::string, int>> counts;
  std::set<std::string> columns;
  for (const auto& e : r.needs.experts) {
    if (layers.empty() || layers.back() != e.layer) {
      layers.push_back(e.layer);
      counts.emplace_back();
    }
    const plan::Device* d = device_of(o.device_map, e.module);
    const std::string label = d ? plan::device_label(*d, kind) : "unmapped";
    ++counts.back()[label];
    columns.insert(label);
  }
  std::printf("\n%-40s", "routed experts per layer");
  for (const auto& c : columns) std::printf(" %8s", c.c_str());
  std::printf("\n");
  for (size_t i = 0; i < layers.size();) {
    size_t j = i + 1;
    while (j < layers.size() && counts[j] == counts[i]) ++j;
    std::string shown = layers[i];
    if (j - i > 1) shown += "-" + std::to_string(numbered(layers[j - 1]) ? numbered(layers[j - 1])->second : 0);
    std::printf("%-40s", shown.c_str());
    for (const auto& c : columns) std::printf(" %8d", counts[i].count(c) ? counts[i].at(c) : 0);
    std::printf("\n");
    i = j;
  }
}

void print_table(const Request& r, const plan::MapPlan& o, const plan::MaxMemory& mm, const std::string& kind) {
  const plan::ModuleSizes sizes = plan::compute_module_sizes(r.tree, r.sizes);
  // Entries of routed experts are summed up per layer below; a module's
  // bytes leave out the entries under it, shown on their own lines.
  std::set<std::string> expert_entries;
  for (const auto& [name, device] : o.device_map)
    for (const auto& e : r.needs.experts)
      if (e.module == name || e.module.rfind(name + ".", 0) == 0) {
        if (name.size() > e.layer.size()) expert_entries.insert(name);
        break;
      }
  const auto bytes_of = [&](const std::string& name) {
    double bytes = sizes.at(name);
    for (const auto& [key, device] : o.device_map)
      if (key.size() > name.size() && (name.empty() || key.rfind(name + ".", 0) == 0)) bytes -= sizes.at(key);
    return bytes;
  };
  std::printf("strategy %s: %s\n\n%-40s %-8s %s\n", r.strategy.c_str(), r.summary.c_str(), "module", "device", "bytes");
  // Runs of numbered siblings (decoder layers) on one device print as one line.
  for (size_t i = 0; i < o.device_map.size();) {
    const auto& [name, device] = o.device_map[i];
    if (expert_entries.count(name)) {
      ++i;
      continue;
    }
    size_t j = i + 1;
    const auto first = numbered(name);
    double total = bytes_of(name);
    bool same_size = true;
    while (first && j < o.device_map.size() && o.device_map[j].second == device) {
      const auto next = numbered(o.device_map[j].first);
      if (!next || next->first != first->first || next->second != first->second + static_cast<long>(j - i)) break;
      same_size = same_size && bytes_of(o.device_map[j].first) == bytes_of(name);
      total += bytes_of(o.device_map[j].first);
      ++j;
    }
    std::string shown = name.empty() ? "(everything)" : name, detail;
    // A tied parameter registered here but counted at its first registration.
    for (const auto& group : r.tree.tied)
      for (const auto& member : group)
        if (member.rfind(name + ".", 0) == 0 && !sizes.contains(member))
          for (const auto& owner : group)
            if (sizes.contains(owner)) detail = " (" + member + " is " + owner + ")";
    if (j - i > 1) {
      shown += "-" + std::to_string(first->second + static_cast<long>(j - i - 1));
      detail = " (" + std::to_string(j - i) + (same_size ? " × " + format_bytes(bytes_of(name)) : " layers") + ")";
    }
    std::printf("%-40s %-8s %s%s\n", shown.c_str(), plan::device_label(device, kind).c_str(),
                format_bytes(total).c_str(), detail.c_str());
    i = j;
  }
  print_experts(r, o, kind);
  std::printf("\n%-8s %11s %11s %11s %11s %11s %11s\n", "device", "weights", "KV+runtime", "activations", "staging",
              "total", "budget");
  bool over = false;
  for (const auto& u : o.usage.devices) {
    if (u.total() == 0 && u.device.kind == plan::Device::disk &&
        std::none_of(mm.begin(), mm.end(), [&](const auto& e) { return e.first == u.device; }))
      continue;
    const bool short_of_room = u.total() > u.budget;
    over = over || short_of_room;
    std::printf("%-8s %11s %11s %11s %11s %11s %11s%s\n", plan::device_label(u.device, kind).c_str(),
                format_bytes(u.weights).c_str(), format_bytes(u.runtime).c_str(),
                format_bytes(u.activations).c_str(), format_bytes(u.staging).c_str(),
                format_bytes(u.total()).c_str(), format_bytes(u.budget).c_str(),
                short_of_room ? "  over budget" : "");
  }
  const std::string exec = o.main_accelerator ? plan::device_label(*o.main_accelerator, kind) : "cpu";
  std::printf("\ncpu and disk modules execute on %s", exec.c_str());
  // An offloaded lookup (an untied embedding) runs where it lies.
  std::string lookups;
  for (const auto& name : r.needs.local_when_offloaded) {
    const plan::Device* placed = nullptr;
    size_t longest = 0;
    for (const auto& [key, device] : o.device_map)
      if ((key.empty() || key == name || name.rfind(key + ".", 0) == 0) && (!placed || key.size() > longest)) {
        placed = &device;
        longest = key.size();
      }
    if (placed && !placed->is_gpu()) lookups += (lookups.empty() ? "" : ", ") + name;
  }
  if (o.main_accelerator && !lookups.empty()) std::printf(", except %s (a lookup), on the cpu", lookups.c_str());
  std::printf(".\n");
  if (r.strategy != "auto")
    std::printf("note: %s is Accelerate's strategy: it budgets weights only (plus a reserve for the largest layer); "
                "KV cache, activations and staging are shown but were not budgeted%s.\n",
                r.strategy.c_str(), over ? ", and this map exceeds a budget when run" : "");
  if (o.buffer_warning)
    std::printf("note: Accelerate would warn that the buffers of offloaded modules fit no accelerator.\n");
  if (!o.usage.unmapped.empty()) {
    std::printf("note: %zu module(s) or tensor(s) are in no map entry (Accelerate drops the buffers of split modules):",
                o.usage.unmapped.size());
    for (const auto& n : o.usage.unmapped) std::printf(" %s", n.c_str());
    std::printf("\n");
  }
}

void run_map(const MapArgs& a) {
  const int sources = !a.model_dir.empty() + !a.config_path.empty() + !a.tree_path.empty();
  if (sources != 1) throw Error("give exactly one of -m DIR, --config FILE or --tree FILE");
  if (!a.accelerators.empty() && a.accelerators != "sim" && a.accelerators != "cuda")
    throw Error("unknown accelerator kind '" + a.accelerators + "'", "", "", "use --accelerators sim or cuda");
  Request r = a.tree_path.empty() ? from_config(a) : from_tree_file(a);
  if (a.strategy_opt->count() > 0 || a.tree_path.empty()) r.strategy = a.strategy;
  if (a.no_split_opt->count() > 0) r.no_split = split_list(a.no_split);
  if (r.strategy != "auto" && r.strategy != "sequential" && r.strategy != "balanced" && r.strategy != "balanced_low_0")
    throw Error("unknown strategy '" + r.strategy + "'", "", "", "use auto, sequential, balanced or balanced_low_0");

  plan::MaxMemory mm;
  if (!a.max_memory.empty()) {
    mm = plan::parse_max_memory(a.max_memory);
  } else if (r.max_memory) {
    mm = *r.max_memory;
  } else if (!a.model_dir.empty()) {
    // What loading assumes on a machine without accelerators: 90% of the
    // RAM available now, and the disk tier.
    mm = plan::default_max_memory({}, static_cast<double>(available_ram_bytes()));
  } else {
    throw Error("no memory budget", "", "", "give --max-memory, e.g. --max-memory 0=24GiB,cpu=64GiB,disk");
  }
  const plan::MapPlan o = plan_request(r, mm, a.accelerators);
  if (a.json) {
    Json out = Json::object();
    for (const auto& [name, d] : o.device_map) out[name] = d.is_gpu() ? Json(d.index) : Json(d.to_string());
    std::printf("%s\n", out.dump().c_str());
  } else {
    print_table(r, o, mm, a.accelerators);
  }
}

}  // namespace

void add_map_command(CLI::App& app) {
  auto a = std::make_shared<MapArgs>();
  CLI::App* cmd = app.add_subcommand(
      "map",
      "Plan a device map: which modules go on which accelerator, in RAM or on disk, and what each device then "
      "holds. Give one of -m, --config or --tree. Prints a table of modules and per-device totals, or with --json "
      "the map as Accelerate writes it.");
  cmd->add_option("-m,--model", a->model_dir,
                  "Model folder: config.json plus safetensors headers (tensor dtypes); no weights are read");
  cmd->add_option("--config", a->config_path,
                  "A config.json alone; tensors take its torch_dtype (float32 if absent). Plans models of any size");
  cmd->add_option("--tree", a->tree_path,
                  "A planning request in the device-map fixture format (tree, tied, max_memory in bytes, "
                  "no_split_module_classes, strategy, offload_buffers, dtype, special_dtypes); flags override it. "
                  "Weights only: no KV or activation model");
  cmd->add_option("--max-memory", a->max_memory,
                  "Budgets like 0=8GiB,1=8GiB,cpu=30GiB,disk: accelerator ordinals (0, cuda:0, sim:0), cpu, and "
                  "disk (unlimited; without it auto never offloads to disk). GiB/MiB are powers of 2, GB/MB of 10. "
                  "Required with --config and --tree (unless the file has max_memory); with -m the default is what "
                  "loading assumes without accelerators: 90% of the RAM available now, and disk");
  a->strategy_opt = cmd->add_option("--strategy", a->strategy,
                                    "auto (strata: budgets KV cache, activations and staging), or Accelerate's "
                                    "sequential, balanced, balanced_low_0 (identical maps to accelerate 0.33)")
                        ->capture_default_str();
  a->no_split_opt = cmd->add_option("--no-split", a->no_split,
                                    "Module classes never split across devices, comma-separated (default: the "
                                    "architecture's decoder layer, e.g. LlamaDecoderLayer; --tree: the file's)");
  a->dtype_opt = cmd->add_option("--dtype", a->dtype,
                                 "Weights dtype override (bfloat16, float16, float32): floating tensors count the "
                                 "smaller of it and their own size, as Accelerate's dtype= does");
  cmd->add_option("--quantize", a->quantize,
                  "With -m: plan the model as --quantize int8|int4 would load it (its matrices, experts included, "
                  "quantized; embeddings, head and routers as stored unless --quantize-all)");
  cmd->add_flag("--quantize-all", a->quantize_all, "With --quantize: the embeddings, the head and routers too");
  cmd->add_option("--ctx", a->ctx, "Context length the KV cache is sized for (default: 2048, or "
                                   "max_position_embeddings if smaller)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch", a->batch, "Sequences run at once (sizes KV cache and activations)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--threads", a->threads, "Worker threads the activation scratch is sized for (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--accelerators", a->accelerators,
                  "Name accelerators as sim:N or cuda:N in the table (default: Accelerate's ordinals); labels only");
  cmd->add_flag("--json", a->json, "Print only the map, as Accelerate writes it: {\"model.layers.0\": 0, \"lm_head\": \"cpu\"}");
  cmd->callback([a] { run_map(*a); });
}

}  // namespace strata::cli
