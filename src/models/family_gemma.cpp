// GemmaForCausalLM as transformers 4.44 builds it (modeling_gemma.py): the
// Llama decoder with RMSNorms that multiply by (1 + weight), embeddings
// scaled by sqrt(hidden_size), a GeGLU MLP (gelu_pytorch_tanh), head_dim
// independent of hidden / heads (multi-query attention in the 2B model), a
// rotary_emb per attention only, and a head tied to the embedding by default.
#include <cmath>

#include "models/common_modules.h"
#include "models/families.h"

namespace strata {

Description describe_gemma(const ModelConfig& c) {
  const ActivationDecl act = activation_named(c.hidden_act);
  const LlamaLayer layer{"Gemma", c.attention_bias, c.attention_bias, false, act.cls,
                         [&] { return std::vector<ModuleDecl>{rotary("rotary_emb", "GemmaRotaryEmbedding", c.head_dim)}; },
                         {{"input_layernorm", Role::attention_norm}, {"post_attention_layernorm", Role::mlp_norm}}};
  Description d = decoder_stack(c, {"Gemma", [&](int64_t i) { return llama_layer(c, layer, i); }, {}, {}});
  d.forward.norm = NormKind::rms_plus_one;
  d.forward.activation = act.op;
  // normalizer = torch.tensor(hidden_size**0.5, dtype=hidden_states.dtype)
  d.forward.embedding_scale = static_cast<float>(std::sqrt(static_cast<double>(c.hidden_size)));
  return d;
}

}  // namespace strata
