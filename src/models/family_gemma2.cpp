// Gemma2ForCausalLM as transformers 4.44 builds it (modeling_gemma2.py):
// Gemma's decoder with four norms per layer (the attention and MLP outputs
// are normalized before each residual add), scores scaled by
// query_pre_attn_scalar^-0.5 and soft-capped before the mask, a sliding
// window on the even layers (is_sliding = not layer_idx % 2), and soft-capped
// final logits. strata computes the eager attention, whose numbers the
// fixtures hold (4.44's default SDPA class skips the score soft-cap).
#include <cmath>

#include "models/common_modules.h"
#include "models/families.h"

namespace strata {

Description describe_gemma2(const ModelConfig& c) {
  const ActivationDecl act = activation_named(c.hidden_act);
  const LlamaLayer layer{"Gemma2", c.attention_bias, c.attention_bias, false, act.cls,
                         [&] { return std::vector<ModuleDecl>{rotary("rotary_emb", "Gemma2RotaryEmbedding", c.head_dim)}; },
                         {{"input_layernorm", Role::attention_norm},
                          {"post_attention_layernorm", Role::attention_output_norm},
                          {"pre_feedforward_layernorm", Role::mlp_norm},
                          {"post_feedforward_layernorm", Role::mlp_output_norm}}};
  Description d = decoder_stack(c, {"Gemma2", [&](int64_t i) { return llama_layer(c, layer, i); }, {}, {}});
  d.forward.norm = NormKind::rms_plus_one;
  d.forward.activation = act.op;
  d.forward.embedding_scale = static_cast<float>(std::sqrt(static_cast<double>(c.hidden_size)));
  d.forward.attention_scale = static_cast<float>(std::pow(c.query_pre_attn_scalar, -0.5));
  d.forward.attention_softcap = static_cast<float>(c.attn_logit_softcapping);
  d.forward.final_softcap = static_cast<float>(c.final_logit_softcapping);
  for (int64_t i = 0; i < c.num_layers; ++i)
    d.forward.window.push_back(i % 2 == 0 ? static_cast<int>(c.sliding_window) : 0);
  return d;
}

}  // namespace strata
