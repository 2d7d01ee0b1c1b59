// GPT2LMHeadModel as transformers 4.44 builds it (modeling_gpt2.py): learned
// position embeddings, pre-LayerNorm blocks with biases, Conv1D projections
// whose weights are stored [in, out] (the runtime holds them transposed), a
// fused c_attn (q, k, v columns), a plain MLP with gelu_new, and the head
// tied to wte. Each attention registers its causal mask as a bool buffer
// (and masked_bias, in the dtype the model is built in), which Accelerate
// counts when it plans.
#include "models/common_modules.h"
#include "models/families.h"

namespace strata {

Description describe_gpt2(const ModelConfig& c) {
  const ActivationDecl act = activation_named(c.hidden_act);
  const int64_t h = c.hidden_size, positions = c.max_position_embeddings;
  const auto layer_norm = [&](const char* name, Role role) { return norm(name, "LayerNorm", h, true, role); };
  ModuleDecl blocks = plain("h", "ModuleList");
  for (int64_t i = 0; i < c.num_layers; ++i) {
    ModuleDecl attn = plain("attn", "GPT2Attention",
                            {conv1d("c_attn", 3 * h, h, Role::qkv), conv1d("c_proj", h, h, Role::o),
                             plain("attn_dropout", "Dropout"), plain("resid_dropout", "Dropout")});
    attn.buffers = {{"bias", {1, 1, positions, positions}, "bool", false}, {"masked_bias", {}, kModelDtype, false}};
    ModuleDecl mlp = plain("mlp", "GPT2MLP",
                           {conv1d("c_fc", c.intermediate_size, h, Role::up),
                            conv1d("c_proj", h, c.intermediate_size, Role::down), plain("act", act.cls),
                            plain("dropout", "Dropout")});
    ModuleDecl block = plain(std::to_string(i), "GPT2Block",
                             {layer_norm("ln_1", Role::attention_norm), std::move(attn),
                              layer_norm("ln_2", Role::mlp_norm), std::move(mlp)});
    block.role = Role::decoder_layer;
    blocks.children.push_back(std::move(block));
  }
  ModuleDecl transformer = plain("transformer", "GPT2Model",
                                 {embedding("wte", c.vocab_size, h, Role::embedding),
                                  embedding("wpe", positions, h, Role::position_embedding), plain("drop", "Dropout"),
                                  std::move(blocks), layer_norm("ln_f", Role::final_norm)});
  Description d;
  d.root = plain("", "GPT2LMHeadModel",
                 {std::move(transformer), linear("lm_head", c.vocab_size, h, false, Role::head)});
  if (c.tie_word_embeddings) d.tied = {{"lm_head.weight", "transformer.wte.weight"}};
  d.no_split = "GPT2Block";
  d.forward.norm = NormKind::layer;
  d.forward.activation = act.op;
  d.forward.positions = Positions::learned;
  return d;
}

}  // namespace strata
