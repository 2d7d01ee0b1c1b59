#include "device_map_options.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string_view>

#include "core/byte_size.h"
#include "core/hash.h"
#include "process_memory.h"
#include "progress_line.h"
#include "strata/error.h"

namespace strata::cli {

void add_device_map_options(CLI::App* cmd, DeviceMapArgs& args) {
  cmd->add_option("--compute", args.compute,
                  "The math of matrix products on the CPU. exact: weights widened to f32, f32 products (logits equal "
                  "transformers' float32 forward, whatever the map); fast: bf16 weights times activations rounded "
                  "to bf16, summed in f32 (AVX512-BF16 where the CPU has it; other weight dtypes as exact)")
      ->capture_default_str()
      ->check(CLI::IsMember({"exact", "fast"}));
  cmd->add_option("--device-map", args.device_map,
                  "Where modules go: auto (strata's planner: fills accelerators, then RAM, then disk, budgeting KV "
                  "cache, activations and staging), sequential | balanced | balanced_low_0 (Accelerate's), a JSON "
                  "map such as '{\"model.layers.0\": 0, \"lm_head\": \"cpu\", \"\": \"disk\"}', or a file holding one")
      ->capture_default_str();
  cmd->add_option("--max-memory", args.max_memory,
                  "Budgets per device, e.g. '0=8GiB,cpu=30GiB,disk' (keys: accelerator ordinal, sim:N, cuda:N, cpu, "
                  "disk; GiB/MiB = powers of 2, GB/MB = powers of 10). Default: each accelerator's capacity, 90% of "
                  "available RAM, and the disk");
  cmd->add_option("--offload-folder", args.offload_folder,
                  "Folder for weights that must be converted (disk-tier weights in another dtype than stored, "
                  "repacked quantized layouts, --quantize); reused by later runs. Default: "
                  "~/.cache/strata/offload/<model>-<hash>");
  cmd->add_option("--sim-devices", args.sim_devices,
                  "Simulated accelerators sim:0, sim:1, ...: '2x64MiB' (two of 64 MiB), '64MiB,128MiB', or "
                  "'2x64MiB@2GB' to limit copies to 2 GB/s; they replace the GPUs. Default: $STRATA_SIM_DEVICES. "
                  "Without them the accelerators are the GPUs the CUDA backend finds (cuda:0, ...; none with "
                  "STRATA_NO_GPU=1)");
  cmd->add_option("--main-device", args.main_device,
                  "Device that runs offloaded (cpu/disk) modules, e.g. sim:0 or cpu (an untied embedding, a lookup, "
                  "always runs on the CPU). Default: the planner's main accelerator, else the first accelerator in "
                  "the map, else the CPU");
  cmd->add_option("--offload-compute", args.offload_compute,
                  "With a GPU: where modules offloaded to RAM or disk run. stream: on the GPU, their weights copied "
                  "over PCIe before each use; local: on the CPU, where they lie; auto: whichever is faster for this "
                  "batch, measured at start-up (copy rate against the CPU's product rate). Mixture-of-experts "
                  "models: the same for the routed experts of GPU layers kept in RAM or on disk; auto decides per "
                  "expert and step, by the tokens routed to it")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "stream", "local"}));
  cmd->add_option("--dtype", args.dtype, "Compute dtype of the weight matrices: f32, bf16 or f16 (default: as stored)");
  cmd->add_option("--quantize", args.quantize,
                  "Quantize a float checkpoint's matrices at load, once, into the offload folder (reused by later "
                  "runs): int8 or int4, in groups of 32 with a float16 scale each, each group's scale chosen for the "
                  "least squared error; int8-rtn / int4-rtn: plain round-to-nearest, for comparison. Every tier then "
                  "holds and streams the quantized bytes. Embeddings, the head and MoE routers stay as stored "
                  "(see --quantize-all); pre-quantized checkpoints (GPTQ, AWQ, FP8, compressed-tensors) are read as "
                  "stored and need no flag")
      ->check(CLI::IsMember({"int8", "int4", "int8-rtn", "int4-rtn"}));
  cmd->add_flag("--quantize-all", args.quantize_all, "With --quantize: quantize the embeddings, the head and routers too");
  cmd->add_option("--ctx", args.ctx,
                  "Context tokens per row the plan budgets the KV cache for (default and minimum: what this command feeds)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--expert-cache", args.expert_cache,
                  "Mixture-of-experts models: routed experts each cache holds (in RAM for experts read from disk, on "
                  "an accelerator for experts copied to it); the plan budgets them before placing experts. Default: "
                  "twice the experts one token routes per layer")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--expert-cache-policy", args.expert_cache_policy,
                  "Which expert a full cache drops: lfu (the least often used, its counts halving as they age; the "
                  "least recent among equals) or lru (the least recently used)")
      ->capture_default_str()
      ->check(CLI::IsMember({"lru", "lfu"}));
  cmd->add_flag("--quiet-map", args.quiet, "Do not print the device map and the memory peaks");
}

namespace {

// $XDG_CACHE_HOME/strata/offload/NAME-HASH (or ~/.cache/...) for a model
// dir. The hash is FNV-1a, stable across builds, so an upgrade never orphans
// a folder of converted weights.
std::filesystem::path default_offload_folder(const std::filesystem::path& model_dir) {
  std::filesystem::path base;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    base = xdg;
  else if (const char* home = std::getenv("HOME"); home && *home)
    base = std::filesystem::path(home) / ".cache";
  else
    base = std::filesystem::temp_directory_path();
  const std::filesystem::path absolute = std::filesystem::absolute(model_dir).lexically_normal();
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a(absolute.string())));
  return base / "strata" / "offload" / (absolute.filename().string() + "-" + hash);
}

}  // namespace

ModelOptions model_options(const std::string& model_dir, const DeviceMapArgs& args, int threads, int64_t ctx_needed,
                           int64_t batch) {
  ModelOptions o;
  o.threads = threads;
  o.device_map = args.device_map;
  o.max_memory = args.max_memory;
  o.offload_folder = args.offload_folder.empty() ? default_offload_folder(model_dir) : std::filesystem::path(args.offload_folder);
  const char* no_gpu = std::getenv("STRATA_NO_GPU");
  o.gpus = !(no_gpu && *no_gpu && std::string_view(no_gpu) != "0");
  const char* env_sims = std::getenv("STRATA_SIM_DEVICES");
  o.sim_devices = !args.sim_devices.empty() ? args.sim_devices : env_sims ? env_sims : "";
  o.main_device = args.main_device;
  o.offload_compute = args.offload_compute;
  o.compute = args.compute;
  o.load_progress = progress_callback("strata: loading weights");
  o.convert_progress = progress_callback("strata: writing the offload folder");
  o.quantize = args.quantize;
  o.quantize_all = args.quantize_all;
  if (args.quantize_all && args.quantize.empty())
    throw Error("--quantize-all needs --quantize", "", "", "add --quantize int8 or int4");
  o.warning = [](const std::string& message) { std::fprintf(stderr, "strata: warning: %s\n", message.c_str()); };
  o.ctx = std::max(args.ctx, ctx_needed);
  o.expert_cache = args.expert_cache;
  o.expert_cache_policy = args.expert_cache_policy;
  o.batch = batch;
  if (!args.dtype.empty()) {
    if (args.dtype == "f32" || args.dtype == "float32")
      o.dtype = DType::F32;
    else if (args.dtype == "bf16" || args.dtype == "bfloat16")
      o.dtype = DType::BF16;
    else if (args.dtype == "f16" || args.dtype == "float16")
      o.dtype = DType::F16;
    else
      throw Error("--dtype must be f32, bf16 or f16, not '" + args.dtype + "'");
  }
  return o;
}

void print_device_map(const Model& model, const DeviceMapArgs& args) {
  if (args.quiet) return;
  for (const DeviceReport& d : model.devices()) {
    if (d.modules.empty() && !d.runs_offloaded) continue;
    std::string modules;
    for (const auto& m : d.modules) modules += (modules.empty() ? "" : ", ") + m;
    if (d.runs_offloaded) modules += std::string(modules.empty() ? "" : "; ") + "runs the offloaded modules";
    std::string budget = std::isinf(d.budget) ? "" : ", budget " + format_bytes(d.budget);
    std::fprintf(stderr, "strata: map (%s) %-6s %s | weights %s, planned %s%s\n", model.plan_source().c_str(),
                 d.name.c_str(), modules.c_str(), format_bytes(d.weight_bytes).c_str(),
                 format_bytes(d.planned_bytes).c_str(), budget.c_str());
  }
  if (!model.offload_choice().empty())
    std::fprintf(stderr, "strata: offloaded modules %s\n", model.offload_choice().c_str());
  if (!model.expert_compute_choice().empty())
    std::fprintf(stderr, "strata: routed experts in RAM %s\n", model.expert_compute_choice().c_str());
  if (!model.offload_folder().empty())
    std::fprintf(stderr, "strata: offload folder %s\n", model.offload_folder().c_str());
  std::fprintf(stderr, "strata: compute %s\n", model.compute_description().c_str());
}

void print_memory_peaks(const std::vector<DeviceReport>& devices, const DeviceMapArgs& args, uint64_t peak_rss_anon) {
  if (args.quiet) return;
  std::string line;
  for (const DeviceReport& d : devices) {
    if (d.name == "disk") continue;
    line += (line.empty() ? "" : ", ") + d.name + " " + format_bytes(static_cast<double>(d.peak));
    if (!std::isinf(d.budget)) line += " (budget " + format_bytes(d.budget) + ")";
  }
  const ProcessMemory now = read_process_memory();
  std::fprintf(stderr, "strata: peak allocated %s | process: peak RssAnon %s (sampled), VmHWM %s, RssFile now %s\n",
               line.c_str(), format_bytes(static_cast<double>(peak_rss_anon)).c_str(),
               format_bytes(static_cast<double>(now.vm_hwm)).c_str(),
               format_bytes(static_cast<double>(now.rss_file)).c_str());
}

}  // namespace strata::cli
