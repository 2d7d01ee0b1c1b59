// Rotary embeddings as each family's config asks for them (transformers'
// modeling_rope_utils.py and modeling_phi3.py): plain, llama3-scaled, or
// Phi-3's longrope, which has one table for short contexts and one for long.
#pragma once

#include <optional>

#include "backend/rope.h"
#include "strata/model_config.h"

namespace strata {

struct RopeTables {
  Rope short_context;
  // Longrope only: used by a step whose sequence, counted to its last
  // position, is longer than original_max_position_embeddings.
  std::optional<Rope> long_context;
  int64_t long_after = 0;  // original_max_position_embeddings

  // The table for a step whose last position is `last_position`.
  const Rope& for_last_position(int64_t last_position) const {
    return long_context && last_position + 1 > long_after ? *long_context : short_context;
  }
};

RopeTables rope_tables(const ModelConfig& config);

}  // namespace strata
