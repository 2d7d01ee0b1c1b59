// Phi-3's longrope tables against the formulas of transformers 4.44
// (Phi3LongRoPEScaledRotaryEmbedding): inv_freq = 1 / (factor_i *
// base^(2i/d)) in float32, cos and sin scaled by sqrt(1 + ln(s) / ln(orig))
// with s = max_position_embeddings / original_max_position_embeddings, and
// the long factors once a sequence is longer than the original context.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "models/rope_variants.h"
#include "strata/model_config.h"

namespace strata {
namespace {

ModelConfig phi3_longrope(int max_positions) {
  // head_dim 8: four factors each.
  const std::string json = R"({"architectures": ["Phi3ForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
    "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 300, "rope_theta": 10000.0,
    "max_position_embeddings": )" + std::to_string(max_positions) + R"(, "original_max_position_embeddings": 4096,
    "rope_scaling": {"type": "su", "short_factor": [1.0, 1.5, 2.0, 4.0], "long_factor": [2.0, 3.0, 5.0, 8.0]}})";
  return ModelConfig::from_json_text(json, "phi3 config");
}

TEST(RopeVariants, LongropeFrequenciesScalingAndTableChoice) {
  const ModelConfig c = phi3_longrope(131072);
  ASSERT_TRUE(c.rope_longrope.has_value());
  const RopeTables t = rope_tables(c);
  ASSERT_TRUE(t.long_context.has_value());
  const float short_factor[] = {1.0f, 1.5f, 2.0f, 4.0f}, long_factor[] = {2.0f, 3.0f, 5.0f, 8.0f};
  for (int i = 0; i < 4; ++i) {
    const float base = std::pow(10000.0f, static_cast<float>(2 * i) / 8.0f);
    EXPECT_EQ(t.short_context.inv_freq()[static_cast<size_t>(i)], 1.0f / (short_factor[i] * base)) << i;
    EXPECT_EQ(t.long_context->inv_freq()[static_cast<size_t>(i)], 1.0f / (long_factor[i] * base)) << i;
  }
  const float scaling = static_cast<float>(std::sqrt(1.0 + std::log(32.0) / std::log(4096.0)));
  EXPECT_EQ(t.short_context.attention_scaling(), scaling);
  EXPECT_EQ(t.long_context->attention_scaling(), scaling);
  // seq_len = last position + 1 > 4096 picks the long factors.
  EXPECT_EQ(&t.for_last_position(4095), &t.short_context);
  EXPECT_EQ(&t.for_last_position(4096), &*t.long_context);
}

TEST(RopeVariants, NoContextExtensionMeansNoScaling) {
  const RopeTables t = rope_tables(phi3_longrope(4096));
  EXPECT_EQ(t.short_context.attention_scaling(), 1.0f);
}

TEST(RopeVariants, LongropeFactorsMustMatchHalfTheHeadDim) {
  std::string json = R"({"architectures": ["Phi3ForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
    "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 300,
    "rope_scaling": {"type": "longrope", "short_factor": [1.0], "long_factor": [2.0, 3.0, 5.0, 8.0]}})";
  try {
    ModelConfig::from_json_text(json, "phi3 config");
    ADD_FAILURE() << "accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("short_factor"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace strata
