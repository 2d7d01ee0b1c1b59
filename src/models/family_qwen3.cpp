// Qwen3ForCausalLM as transformers 4.51.3 builds it (modeling_qwen3.py): the
// Llama decoder with a per-head RMSNorm on queries and keys (q_norm, k_norm
// over head_dim) before rope, head_dim independent of hidden / heads, biases
// only with attention_bias, and one rotary_emb at the model level.
#include "models/common_modules.h"
#include "models/families.h"

namespace strata {

Description describe_qwen3(const ModelConfig& c) {
  const ActivationDecl act = activation_named(c.hidden_act);
  const auto head_norms = [&] {
    return std::vector<ModuleDecl>{norm("q_norm", "Qwen3RMSNorm", c.head_dim, false, Role::q_norm),
                                   norm("k_norm", "Qwen3RMSNorm", c.head_dim, false, Role::k_norm)};
  };
  const LlamaLayer layer{"Qwen3", c.attention_bias, c.attention_bias, false, act.cls, head_norms,
                         {{"input_layernorm", Role::attention_norm}, {"post_attention_layernorm", Role::mlp_norm}}};
  DecoderStack stack{"Qwen3", [&](int64_t i) { return llama_layer(c, layer, i); }, {},
                     {rotary("rotary_emb", "Qwen3RotaryEmbedding", c.head_dim)}};
  Description d = decoder_stack(c, stack);
  d.forward.activation = act.op;
  // transformers 4.51.3 builds the causal mask with config.sliding_window on
  // every layer whenever it is set, whatever use_sliding_window says.
  d.forward.window.assign(static_cast<size_t>(c.num_layers), static_cast<int>(c.sliding_window));
  return d;
}

}  // namespace strata
