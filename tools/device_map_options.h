// The device-map flags generate, logits and bench share, and the lines they
// print about the map at start and the memory peaks at the end.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>

#include "strata/model.h"

namespace strata::cli {

struct DeviceMapArgs {
  std::string device_map = "auto";
  std::string max_memory;
  std::string offload_folder;
  std::string sim_devices;
  std::string main_device;
  std::string offload_compute = "auto";
  std::string dtype;
  std::string quantize;
  bool quantize_all = false;
  int64_t ctx = 0;  // 0: what the command will use
  int64_t expert_cache = 0;  // 0: the planner's choice
  std::string expert_cache_policy = "lfu";
  std::string compute = "fast";  // logits sets exact before adding the flags
  bool quiet = false;
};

void add_device_map_options(CLI::App* cmd, DeviceMapArgs& args);

// ModelOptions from the flags for the model in model_dir; ctx_needed is
// what the command will feed (used when --ctx is not given), batch the rows
// it runs together. The environment fills what the flags leave out:
// $STRATA_SIM_DEVICES, and the offload folder under $XDG_CACHE_HOME (or
// ~/.cache)/strata/offload.
ModelOptions model_options(const std::string& model_dir, const DeviceMapArgs& args, int threads, int64_t ctx_needed,
                           int64_t batch);

// One line per device that holds modules, to stderr, and a closing line with
// each device's peak allocation beside its budget and the process's peak
// anonymous memory (sampled, see process_memory.h).
void print_device_map(const Model& model, const DeviceMapArgs& args);
void print_memory_peaks(const std::vector<DeviceReport>& devices, const DeviceMapArgs& args, uint64_t peak_rss_anon);

}  // namespace strata::cli
