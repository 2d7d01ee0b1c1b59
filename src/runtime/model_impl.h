// What a loaded Model holds; shared by the runtime's translation units.
#pragma once

#include <filesystem>
#include <memory>

#include "backend/cpu/thread_pool.h"
#include "models/causal_lm.h"
#include "runtime/weight_store.h"
#include "strata/model.h"

namespace strata {

struct Model::Impl {
  std::filesystem::path dir;
  ModelConfig config;
  GenerationConfig generation;
  std::unique_ptr<WeightStore> weights;
  std::unique_ptr<CausalLM> model;
  std::unique_ptr<ThreadPool> pool;
  double load_seconds = 0;
};

}  // namespace strata
