#include <gtest/gtest.h>

#include "strata/error.h"
#include "models/causal_lm.h"
#include "strata/model_config.h"
#include "test_support.h"

namespace strata {
namespace {

const char* kLlama3 = R"({
  "architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
  "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
  "rope_theta": 500000.0, "rms_norm_eps": 1e-05, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"}})";

std::string with(std::string json, const std::string& from, const std::string& to) {
  const size_t at = json.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return json.replace(at, from.size(), to);
}

std::string error_of(const std::string& json) {
  try {
    ModelConfig::from_json_text(json, "config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelConfig, ReadsLlama3) {
  const ModelConfig c = ModelConfig::from_json_text(kLlama3, "config.json");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.num_kv_heads, 8);
  ASSERT_TRUE(c.rope_llama3.has_value());
  EXPECT_EQ(c.rope_llama3->factor, 8.0);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{128001, 128008, 128009}));
  EXPECT_FALSE(c.tie_word_embeddings);
}

TEST(ModelConfig, ReadsEveryFixture) {
  STRATA_REQUIRE_FIXTURES();
  const ModelConfig qwen = ModelConfig::from_file(test::fixtures_dir() / "models/qwen2-tiny-random/config.json");
  EXPECT_TRUE(qwen.qkv_bias);
  EXPECT_TRUE(qwen.tie_word_embeddings);
  const ModelConfig stories = ModelConfig::from_file(test::fixtures_dir() / "models/stories260k/config.json");
  EXPECT_EQ(stories.head_dim, 8);
  EXPECT_EQ(stories.num_kv_heads, 4);
}

TEST(ModelConfig, ErrorsNameTheProblem) {
  EXPECT_NE(error_of(with(kLlama3, "LlamaForCausalLM", "FooForCausalLM")).find("unsupported architecture FooForCausalLM"),
            std::string::npos);
  EXPECT_NE(error_of(with(kLlama3, "\"llama3\"", "\"yarn\"")).find("rope_scaling type 'yarn'"), std::string::npos);
  EXPECT_NE(error_of(with(kLlama3, "\"num_key_value_heads\": 8", "\"num_key_value_heads\": 5")).find("multiple"),
            std::string::npos);
  EXPECT_NE(error_of(with(kLlama3, "\"hidden_size\": 4096,", "")).find("missing field 'hidden_size'"), std::string::npos);
  EXPECT_NE(error_of(with(kLlama3, "\"vocab_size\": 128256", "\"vocab_size\": -3")).find("'vocab_size'"),
            std::string::npos);
  EXPECT_NE(error_of("{\"architectures\": [").find("malformed JSON"), std::string::npos);
  EXPECT_NE(error_of("[]").find("JSON object"), std::string::npos);
  // The activation is the family's to judge (models/common_modules.cpp), before anything loads.
  const ModelConfig gelu =
      ModelConfig::from_json_text(with(kLlama3, "\"rope_theta\"", "\"hidden_act\": \"gelu\", \"rope_theta\""), "c");
  try {
    model_blocks(gelu);
    ADD_FAILURE() << "a Llama with gelu was accepted";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("gelu"), std::string::npos) << e.message();
  }
}

TEST(ModelConfig, MistralSlidingWindow) {
  const ModelConfig c = ModelConfig::from_json_text(
      with(with(kLlama3, "LlamaForCausalLM", "MistralForCausalLM"), "\"rope_theta\"", "\"sliding_window\": 4096, \"rope_theta\""),
      "config.json");
  EXPECT_EQ(c.sliding_window, 4096);
}

}  // namespace
}  // namespace strata
