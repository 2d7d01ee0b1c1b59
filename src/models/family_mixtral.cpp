// MixtralForCausalLM as transformers 4.44 builds it (modeling_mixtral.py):
// Mistral's attention (with a per-attention rotary_emb that caches cos/sin
// tables, and the sliding window when set), and in every layer a sparse MoE
// block instead of the MLP: a router (`gate`) picks the top-k of
// num_local_experts experts per token, their softmax weights renormalized to
// sum to one, and each expert is a SwiGLU MLP named w1 (gate), w3 (up) and
// w2 (down).
#include "models/common_modules.h"
#include "models/families.h"
#include "strata/error.h"

namespace strata {

Description describe_mixtral(const ModelConfig& c) {
  const ActivationDecl act = activation_named(c.hidden_act);
  const int64_t h = c.hidden_size, ffn = c.moe_intermediate_size;
  const auto expert = [&](std::string name) {
    return plain(std::move(name), "MixtralBlockSparseTop2MLP",
                 {linear("w1", ffn, h, false, Role::gate), linear("w2", h, ffn, false, Role::down),
                  linear("w3", ffn, h, false, Role::up), plain("act_fn", act.cls)});
  };
  const auto layer = [&](int64_t i) {
    ModuleDecl moe = plain("block_sparse_moe", "MixtralSparseMoeBlock",
                           {linear("gate", c.num_experts, h, false, Role::router), expert_list(c, expert)});
    return decoder_layer("Mixtral", i,
                         {attention_qkvo(c, "MixtralAttention", false, false,
                                         {rotary_with_tables(c, "MixtralRotaryEmbedding")}),
                          std::move(moe), hidden_norm(c, "Mixtral", "input_layernorm", Role::attention_norm),
                          hidden_norm(c, "Mixtral", "post_attention_layernorm", Role::mlp_norm)});
  };
  Description d = decoder_stack(c, {"Mixtral", layer, {}, {}});
  d.forward.activation = act.op;
  d.forward.window.assign(static_cast<size_t>(c.num_layers), static_cast<int>(c.sliding_window));
  return d;
}

}  // namespace strata
