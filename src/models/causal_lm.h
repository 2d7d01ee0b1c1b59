// The interface every architecture family implements: a causal language model
// whose forward pass runs over a batch of sequences with a KV cache.
//
// Models name their weights with Hugging Face names and express the forward
// pass in backend ops; they never know where a weight lives.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "backend/kv_cache.h"
#include "backend/tensor_view.h"
#include "strata/model_config.h"

namespace strata {

// Where a model's weights come from. The runtime implements it (memory maps,
// tiers); the model only asks by Hugging Face name and expected shape.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual bool has(const std::string& name) const = 0;
  // A [rows, cols] matrix in F32/BF16/F16; throws strata::Error naming the
  // tensor when missing or of another shape.
  virtual MatrixView matrix(const std::string& name, int64_t rows, int64_t cols) = 0;
  // A 1-D parameter widened to f32, owned by the source.
  virtual const float* vector_f32(const std::string& name, int64_t size) = 0;
};

// One forward step: `rows` sequences each receive `tokens` new ids.
struct ForwardStep {
  std::span<const int32_t> ids;  // rows x tokens, row-major
  int64_t rows = 1;
  int64_t tokens = 1;
  bool all_logits = false;  // logits of every position, else of the last one per row
};

class CausalLM {
 public:
  virtual ~CausalLM() = default;
  virtual const ModelConfig& config() const = 0;
  // Runs the step, appends to the cache and returns logits:
  // [rows, tokens, vocab] with all_logits, else [rows, vocab]. The span stays
  // valid until the next call.
  virtual std::span<const float> forward(ThreadPool& pool, KVCache& cache, const ForwardStep& step) = 0;
  // Bytes of weights one decode step reads (every matrix once, one embedding row).
  virtual uint64_t weight_bytes_per_token() const = 0;
};

// Creates the model for config.architecture, binding its weights from the store.
std::unique_ptr<CausalLM> create_model(const ModelConfig& config, WeightSource& weights);

}  // namespace strata
