// What a loaded Model holds; shared by the runtime's translation units.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "models/causal_lm.h"
#include "plan/device.h"
#include "plan/map_usage.h"
#include "runtime/devices.h"
#include "runtime/executor.h"
#include "runtime/quantized_weights.h"
#include "runtime/expert_store.h"
#include "runtime/weight_store.h"
#include "strata/model.h"

namespace strata {

struct Model::Impl {
  std::filesystem::path dir;
  ModelConfig config;
  GenerationConfig generation;
  std::unique_ptr<QuantizedWeights> quantized;  // before weights: their views point into it
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<DeviceSet> devices;
  plan::DeviceMap device_map;
  plan::MaxMemory max_memory;
  plan::MapUsage usage;  // the plan's bill per device
  std::string plan_source;
  std::string offload_choice;
  std::string expert_compute_choice;
  std::unique_ptr<WeightStore> weights;
  std::unique_ptr<ExpertStore> experts;  // after weights: it reads the checkpoint the weight store holds
  std::unique_ptr<CausalLM> model;
  std::unique_ptr<Executor> executor;
  double load_seconds = 0;
};

}  // namespace strata
