// What config.json and generation_config.json say about a Llama-family model.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace strata {

struct RopeScalingLlama3 {
  double factor = 8.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  double original_max_position_embeddings = 8192.0;
};

struct ModelConfig {
  std::string architecture;  // "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"
  std::string model_type;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<RopeScalingLlama3> rope_llama3;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // bias on q/k/v/o (Llama attention_bias)
  bool qkv_bias = false;        // bias on q/k/v only (Qwen2)
  bool mlp_bias = false;
  int64_t sliding_window = 0;  // 0: none
  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_ids;
  std::string torch_dtype;

  // Parses and validates DIR/config.json. Throws strata::Error naming the file
  // and the field for anything missing, ill-typed, inconsistent or unsupported.
  static ModelConfig from_file(const std::filesystem::path& config_json);
  // Same, from JSON text; `origin` names it in errors.
  static ModelConfig from_json_text(const std::string& text, const std::string& origin);
};

struct GenerationConfig {
  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_ids;
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 50;  // transformers' default
  double top_p = 1.0;
  std::optional<int64_t> max_new_tokens;

  // Reads DIR/generation_config.json if it exists, defaults otherwise.
  static GenerationConfig from_dir(const std::filesystem::path& dir);
};

// The architectures strata can run, for error messages and --help.
const std::vector<std::string>& supported_architectures();

}  // namespace strata
