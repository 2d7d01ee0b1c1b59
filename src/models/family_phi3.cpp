// Phi3ForCausalLM as transformers 4.44 builds it (modeling_phi3.py): the
// Llama decoder with fused projections — qkv_proj holds the q, k and v rows,
// gate_up_proj the gate rows then the up rows — dropouts that are identity
// at inference, and longrope ("su") scaling for long contexts
// (models/rope_variants.cpp). Its sliding_window is used only by flash
// attention: the eager attention, whose results strata reproduces, sees the
// whole context.
#include "models/common_modules.h"
#include "models/families.h"

namespace strata {

Description describe_phi3(const ModelConfig& c) {
  const ActivationDecl act = activation_named(c.hidden_act);
  const int64_t h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  const int64_t ffn = c.intermediate_size;
  const std::string rotary_cls = c.rope_longrope ? "Phi3LongRoPEScaledRotaryEmbedding" : "Phi3RotaryEmbedding";
  DecoderStack stack;
  stack.prefix = "Phi3";
  stack.extras_after_embedding.push_back(plain("embed_dropout", "Dropout"));
  stack.layer = [&](int64_t i) {
    // Phi3Attention registers o_proj before qkv_proj.
    ModuleDecl attention = plain("self_attn", "Phi3Attention",
                                 {linear("o_proj", h, q, false, Role::o), linear("qkv_proj", q + 2 * kv, h, false, Role::qkv),
                                  rotary("rotary_emb", rotary_cls, c.head_dim)});
    ModuleDecl mlp = plain("mlp", "Phi3MLP",
                           {linear("gate_up_proj", 2 * ffn, h, false, Role::gate_up),
                            linear("down_proj", h, ffn, false, Role::down), plain("activation_fn", act.cls)});
    return decoder_layer("Phi3", i,
                         {std::move(attention), std::move(mlp),
                          hidden_norm(c, "Phi3", "input_layernorm", Role::attention_norm),
                          plain("resid_attn_dropout", "Dropout"), plain("resid_mlp_dropout", "Dropout"),
                          hidden_norm(c, "Phi3", "post_attention_layernorm", Role::mlp_norm)});
  };
  Description d = decoder_stack(c, stack);
  d.forward.activation = act.op;
  return d;
}

}  // namespace strata
