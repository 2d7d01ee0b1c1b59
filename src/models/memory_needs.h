// What a model family needs in memory besides its stored weights, from the
// config alone: the planner's input (plan/memory_needs.h) for `auto` maps and
// for the runtime's check before loading.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "models/causal_lm.h"
#include "plan/memory_needs.h"
#include "strata/dtype.h"
#include "strata/model_config.h"

namespace strata {

// How the runtime holds one weight: a matrix in the compute dtype (the
// override, else as stored), a 1-D parameter widened to f32; each allocation
// rounded up to 64 bytes.
uint64_t held_bytes(const WeightSpec& weight, DType stored, std::optional<DType> compute);
// The same for a matrix held in a quantized layout.
uint64_t held_bytes(const WeightSpec& weight, const QuantLayout& layout);

// "float32", "bfloat16", "float16" (torch's names) -> DType; throws strata::Error otherwise.
DType dtype_from_torch(const std::string& torch_name);
std::string torch_dtype_name(DType dtype);

// The needs of a session of `batch` rows x `ctx` tokens run with `threads`
// workers. torch_dtype_of(tensor) gives each stored tensor's torch dtype;
// weights_dtype is the compute dtype override (a torch name), if any;
// all_logits when the session returns every position's logits; quantized_of
// names the matrices held in a quantized layout (their held bytes count).
plan::MemoryNeeds memory_needs(const ModelConfig& config,
                               const std::function<std::string(const std::string&)>& torch_dtype_of,
                               std::optional<std::string> weights_dtype, int64_t ctx, int64_t batch, int threads,
                               bool all_logits = false, const QuantizedOf& quantized_of = {});

}  // namespace strata
