// The Llama family: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM,
// as transformers 4.44 builds them (modeling_llama.py, modeling_mistral.py
// and modeling_qwen2.py share the decoder): RMSNorm, rotary attention with
// grouped query heads, SwiGLU MLP. The differences are config switches and
// rotary modules:
//   - Llama: attention_bias (q/k/v/o) and mlp_bias; a model-level rotary_emb
//     and one per attention (both register inv_freq).
//   - Mistral: a sliding window; only the per-attention rotary_emb.
//   - Qwen2: q/k/v biases; only the per-attention rotary_emb, which also
//     builds cos/sin tables [max_position_embeddings, head_dim] in the
//     model's dtype (non-persistent buffers).
#include "models/common_modules.h"
#include "models/families.h"
#include "strata/error.h"

namespace strata {

Description describe_llama(const ModelConfig& c) {
  const std::string prefix = c.architecture == "MistralForCausalLM" ? "Mistral"
                             : c.architecture == "Qwen2ForCausalLM" ? "Qwen2"
                                                                    : "Llama";
  const ActivationDecl act = activation_named(c.hidden_act);
  if (act.op != Activation::silu) throw Error("the Llama family uses silu, not " + c.hidden_act);
  const auto rotary_emb = [&] {
    return prefix == "Qwen2" ? rotary_with_tables(c, "Qwen2RotaryEmbedding")
                             : rotary("rotary_emb", prefix + "RotaryEmbedding", c.head_dim);
  };
  LlamaLayer layer{prefix, c.attention_bias || c.qkv_bias, c.attention_bias, c.mlp_bias, act.cls,
                   [&] { return std::vector<ModuleDecl>{rotary_emb()}; },
                   {{"input_layernorm", Role::attention_norm}, {"post_attention_layernorm", Role::mlp_norm}}};
  DecoderStack stack{prefix, [&](int64_t i) { return llama_layer(c, layer, i); }, {}, {}};
  if (prefix == "Llama") stack.extras_after_norm.push_back(rotary_emb());
  Description d = decoder_stack(c, stack);
  d.forward.window.assign(static_cast<size_t>(c.num_layers), static_cast<int>(c.sliding_window));
  return d;
}

}  // namespace strata
