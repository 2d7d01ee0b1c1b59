// The forward pass every family shares, composed from building blocks
// (models/building_blocks.h) and set up by a family's description: token
// embedding (scaled, plus learned positions where the family has them), then
// per decoder layer
//   x += [attention_output_norm] attention(attention_norm(x))
//   x += [mlp_output_norm] mlp(mlp_norm(x))
// then the final norm and the head (soft-capped where the family caps).
#pragma once

#include <memory>
#include <vector>

#include "models/architecture.h"
#include "models/causal_lm.h"

namespace strata {

std::unique_ptr<CausalLM> create_decoder(const ModelConfig& config, const Description& description,
                                         std::vector<BlockSpec> blocks, WeightSource& weights, uint64_t expert_bytes);

// Floats of scratch one executing device needs for steps within `limits`.
size_t decoder_workspace_floats(const ModelConfig& config, const StepLimits& limits);

}  // namespace strata
