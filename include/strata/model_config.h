// What config.json and generation_config.json say about a model. Field names
// follow Llama's config; other families' names for the same thing are read
// into them (GPT-2's n_embd is hidden_size, as its config's attribute_map says).
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

// Phi-3's "longrope" (also spelled "su"): per-frequency divisors for short
// and long contexts, and a factor on cos and sin.
struct RopeScalingLongrope {
  std::vector<double> short_factor, long_factor;
  double original_max_position_embeddings = 0;
  std::optional<double> attention_factor;  // else derived from the context extension
};

struct ModelConfig {
  std::string architecture;  // config.json "architectures"[0], e.g. "LlamaForCausalLM"
  std::string model_type;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double norm_eps = 1e-6;  // rms_norm_eps, or GPT-2's layer_norm_epsilon
  std::string hidden_act = "silu";  // the MLP's activation, as transformers names it ("silu", "gelu_pytorch_tanh")
  double rope_theta = 10000.0;
  std::optional<RopeScalingLlama3> rope_llama3;
  std::optional<RopeScalingLongrope> rope_longrope;
  bool tie_word_embeddings = false;  // the config class's default when absent
  bool attention_bias = false;  // bias on q/k/v/o (Llama attention_bias)
  bool qkv_bias = false;        // bias on q/k/v only (Qwen2)
  bool mlp_bias = false;
  int64_t sliding_window = 0;  // 0: none
  // Gemma 2: scores scaled by query_pre_attn_scalar^-0.5, attention and final
  // logits soft-capped (0: no cap).
  double query_pre_attn_scalar = 0;
  double attn_logit_softcapping = 0;
  double final_logit_softcapping = 0;
  // A mixture of experts (Mixtral, Qwen2-MoE, Qwen3-MoE) in its sparse
  // layers; num_experts 0: a dense model.
  int64_t num_experts = 0;              // num_local_experts (Mixtral), num_experts (Qwen)
  int64_t num_experts_per_tok = 0;      // the router's top-k
  int64_t moe_intermediate_size = 0;    // one expert's width (Mixtral: intermediate_size)
  int64_t shared_expert_intermediate_size = 0;  // Qwen2-MoE's shared expert; 0: none
  bool norm_topk_prob = false;          // the top-k weights are renormalized to sum to 1
  int64_t decoder_sparse_step = 1;      // layer i is sparse when (i + 1) % step == 0 ...
  std::vector<int64_t> mlp_only_layers; // ... and i is not listed here
  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_ids;
  std::string torch_dtype;

  // Whether decoder layer `layer` routes through experts (else a dense MLP
  // of intermediate_size), as modeling_qwen2_moe.py decides.
  bool is_sparse_layer(int64_t layer) const;

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

// The architectures whose config.json strata reads, for error messages and --help.
const std::vector<std::string>& supported_architectures();

}  // namespace strata
