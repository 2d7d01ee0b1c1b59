#include "models/rope_variants.h"

#include <cmath>
#include <vector>

namespace strata {
namespace {

// Phi3LongRoPEScaledRotaryEmbedding (transformers 4.44, modeling_phi3.py):
// inv_freq = 1 / (factor_i * base^(2i / dim)), in float32, and cos and sin
// scaled by sqrt(1 + ln(scale) / ln(original)) where scale is
// max_position_embeddings / original_max_position_embeddings (1 when the
// context is not extended), unless the config gives attention_factor.
Rope longrope(const ModelConfig& c, const std::vector<double>& factors) {
  const RopeScalingLongrope& s = *c.rope_longrope;
  const int half = static_cast<int>(c.head_dim / 2);
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(c.head_dim);
    const float base = std::pow(static_cast<float>(c.rope_theta), exponent);
    inv_freq[static_cast<size_t>(i)] = 1.0f / (static_cast<float>(factors[static_cast<size_t>(i)]) * base);
  }
  double scaling = 1.0;
  if (s.attention_factor) {
    scaling = *s.attention_factor;
  } else {
    const double scale = static_cast<double>(c.max_position_embeddings) / s.original_max_position_embeddings;
    if (scale > 1.0) scaling = std::sqrt(1.0 + std::log(scale) / std::log(s.original_max_position_embeddings));
  }
  return Rope(std::move(inv_freq), static_cast<float>(scaling));
}

}  // namespace

RopeTables rope_tables(const ModelConfig& c) {
  if (c.rope_longrope) {
    RopeTables t{longrope(c, c.rope_longrope->short_factor), longrope(c, c.rope_longrope->long_factor),
                 static_cast<int64_t>(c.rope_longrope->original_max_position_embeddings)};
    return t;
  }
  if (!c.rope_llama3) return {Rope(static_cast<int>(c.head_dim), c.rope_theta, nullptr), std::nullopt, 0};
  const Rope::Llama3Scaling scaling{static_cast<float>(c.rope_llama3->factor),
                                    static_cast<float>(c.rope_llama3->low_freq_factor),
                                    static_cast<float>(c.rope_llama3->high_freq_factor),
                                    static_cast<float>(c.rope_llama3->original_max_position_embeddings)};
  return {Rope(static_cast<int>(c.head_dim), c.rope_theta, &scaling), std::nullopt, 0};
}

}  // namespace strata
