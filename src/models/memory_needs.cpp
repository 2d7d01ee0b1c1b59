#include "models/memory_needs.h"

#include <algorithm>
#include <unordered_set>

#include "backend/device.h"
#include "backend/kv_cache.h"
#include "strata/error.h"

namespace strata {
namespace {

uint64_t numel(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (const int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

// The module of decoder layer `layer`.
std::string blocks_layer_module(const std::vector<BlockSpec>& blocks, int64_t layer) {
  for (const BlockSpec& b : blocks)
    if (b.layer == layer) return b.module;
  return {};
}

}  // namespace

DType dtype_from_torch(const std::string& torch_name) {
  if (torch_name == "float32") return DType::F32;
  if (torch_name == "bfloat16") return DType::BF16;
  if (torch_name == "float16") return DType::F16;
  throw Error("unsupported weights dtype '" + torch_name + "'", "", "", "strata computes with float32, bfloat16 or float16 weights");
}

std::string torch_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "float32";
    case DType::BF16: return "bfloat16";
    case DType::F16: return "float16";
    default: throw Error("no torch name for dtype " + std::string(dtype_name(dtype)));
  }
}

uint64_t held_bytes(const WeightSpec& weight, DType stored, std::optional<DType> compute) {
  const size_t element = weight.is_vector() ? sizeof(float) : dtype_size(compute.value_or(stored));
  return align64(static_cast<size_t>(numel(weight.shape)) * element);
}

uint64_t held_bytes(const WeightSpec& weight, const QuantLayout& layout) {
  return align64(quant_bytes(layout, weight.shape[0], weight.shape[1]));
}

plan::MemoryNeeds memory_needs(const ModelConfig& config,
                               const std::function<std::string(const std::string&)>& torch_dtype_of,
                               std::optional<std::string> weights_dtype, int64_t ctx, int64_t batch, int threads,
                               bool all_logits, const QuantizedOf& quantized_of) {
  std::optional<DType> compute;
  if (weights_dtype) compute = dtype_from_torch(*weights_dtype);
  plan::MemoryNeeds needs;
  const StepLimits limits = step_limits(batch, ctx, all_logits, threads);  // validates batch and ctx
  const auto blocks = model_blocks(config);
  const double kv = static_cast<double>(align64(KVCache::layer_bytes(batch, config.num_kv_heads, config.head_dim, ctx)));
  std::unordered_set<std::string> seen;  // a tied tensor is held once
  for (const BlockSpec& block : blocks) {
    if (block.layer >= 0) needs.runtime_bytes[block.module] = kv;
    if (block.lookup) needs.local_when_offloaded.push_back(block.module);
    double extra = 0;
    for (const WeightSpec& w : block.weights) {
      if (!seen.insert(w.name).second) continue;
      if (const QuantLayout* layout = quantized_of && !w.is_vector() ? quantized_of(w.name) : nullptr) {
        // The plan counts the held bytes unrounded; the store rounds each up to 64.
        extra += static_cast<double>(held_bytes(w, *layout) - quant_bytes(*layout, w.shape[0], w.shape[1]));
        continue;
      }
      const DType stored = dtype_from_torch(torch_dtype_of(w.name));
      // The planner counts min(stored, override) bytes (Accelerate's rule).
      const size_t planned_element = compute ? std::min(dtype_size(stored), dtype_size(*compute)) : dtype_size(stored);
      const double planned = static_cast<double>(numel(w.shape) * planned_element);
      extra += static_cast<double>(held_bytes(w, stored, compute)) - planned;
    }
    if (extra != 0) needs.held_extra_bytes[block.module] = extra;
  }
  for (const ExpertSpec& e : model_experts(config)) {
    needs.experts.push_back({e.module, blocks_layer_module(blocks, e.layer)});
    double extra = 0, stored_bytes = 0;
    for (const WeightSpec* w : e.weights()) {
      if (const QuantLayout* layout = quantized_of ? quantized_of(w->name) : nullptr) {
        // Read from the offload folder as held: nothing to convert after the read.
        const uint64_t bytes = quant_bytes(*layout, w->shape[0], w->shape[1]);
        stored_bytes += static_cast<double>(bytes);
        extra += static_cast<double>(held_bytes(*w, *layout) - bytes);
        continue;
      }
      const DType stored = dtype_from_torch(torch_dtype_of(w->name));
      stored_bytes += static_cast<double>(numel(w->shape) * dtype_size(stored));
      const size_t planned_element = compute ? std::min(dtype_size(stored), dtype_size(*compute)) : dtype_size(stored);
      extra += static_cast<double>(held_bytes(*w, stored, compute)) - static_cast<double>(numel(w->shape) * planned_element);
      needs.experts_converted = needs.experts_converted || (compute && *compute != stored);
    }
    if (extra != 0) needs.held_extra_bytes[e.module] = extra;
    needs.expert_stored_bytes = std::max(needs.expert_stored_bytes, stored_bytes);
  }
  if (config.num_experts > 0) {
    // Twice what one token routes per layer: a fetch of a bigger batch's
    // union comes in chunks of that, so the caches need not grow with the
    // batch and leave the room to resident weights (--expert-cache trades
    // one for the other).
    needs.host_expert_cache = needs.device_expert_cache =
        static_cast<int>(std::min(config.num_experts, 2 * config.num_experts_per_tok));
    // MoeHostScratch: the input, then one expert's gathered rows, gate, up and output.
    const double rows = static_cast<double>(limits.max_tokens);
    needs.expert_host_activations =
        rows * static_cast<double>(3 * config.hidden_size + 2 * config.moe_intermediate_size) * sizeof(float);
  }
  needs.activation_bytes = static_cast<double>(align64(workspace_floats(config, limits) * sizeof(float)));
  const SessionHostSizes host = session_host_sizes(config, limits);
  needs.host_bytes = static_cast<double>(align64(host.logits * sizeof(float)) + align64(host.ids * sizeof(int32_t)) +
                                         align64(host.bounce * sizeof(float)));
  return needs;
}

}  // namespace strata
