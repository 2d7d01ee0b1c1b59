// Module layouts several families share, so each family file declares only
// what is its own. Names and registration order follow modeling_llama.py,
// which most decoder-only families copy.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "models/architecture.h"

namespace strata {

// <P>ForCausalLM { model: <P>Model { embed_tokens, [extras_after_embedding],
// layers, norm, [extras_after_norm] }, lm_head }, the head tied to
// embed_tokens with tie_word_embeddings; the decoder layer class <P>DecoderLayer
// is the no-split class. Forward settings are left at their defaults.
struct DecoderStack {
  std::string prefix;                              // "Llama": LlamaModel, LlamaRMSNorm, ...
  std::function<ModuleDecl(int64_t layer)> layer;  // decoder layer i, named "i"
  std::vector<ModuleDecl> extras_after_embedding;  // Phi-3's embed_dropout
  std::vector<ModuleDecl> extras_after_norm;       // Llama's model-level rotary_emb
};
Description decoder_stack(const ModelConfig& c, const DecoderStack& stack);

// The decoder layer of modeling_llama.py and the families that copy it:
// <P>DecoderLayer { self_attn: <P>Attention { q/k/v/o, attention_extras },
// mlp: <P>MLP { gate/up/down, act_fn }, then RMSNorms over the hidden size }.
struct LlamaLayer {
  std::string prefix;
  bool qkv_bias = false, o_bias = false, mlp_bias = false;
  std::string act_cls;
  std::function<std::vector<ModuleDecl>()> attention_extras;  // rotary_emb, q/k norms; may be empty
  std::vector<std::pair<std::string, Role>> norms;           // in registration order
};
ModuleDecl llama_layer(const ModelConfig& c, const LlamaLayer& layer, int64_t i);

// <P>DecoderLayer with the given children, in registration order.
ModuleDecl decoder_layer(const std::string& prefix, int64_t layer, std::vector<ModuleDecl> children);

// Separate q/k/v/o projections (q/k/v biased with qkv_bias, o with o_bias),
// followed by `extras` (a rotary_emb, q/k norms).
ModuleDecl attention_qkvo(const ModelConfig& c, const std::string& cls, bool qkv_bias, bool o_bias,
                          std::vector<ModuleDecl> extras = {});

// gate_proj, up_proj, down_proj and act_fn (class act_cls).
ModuleDecl gated_mlp(const ModelConfig& c, const std::string& cls, bool bias, const std::string& act_cls);
// The same, named `name`, `width` wide and without biases: the experts and
// shared experts of the Qwen MoE families, and their dense layers.
ModuleDecl gated_mlp(std::string name, const std::string& cls, int64_t hidden, int64_t width,
                     const std::string& act_cls);

// experts: ModuleList of c.num_experts routed experts, each made by
// expert(index name) and given Role::expert.
ModuleDecl expert_list(const ModelConfig& c, const std::function<ModuleDecl(std::string name)>& expert);

// A rotary_emb that also builds cos/sin tables [max_position_embeddings,
// head_dim] in the model's dtype (non-persistent): transformers 4.44's
// Qwen2, Qwen2-MoE and Mixtral attention.
ModuleDecl rotary_with_tables(const ModelConfig& c, const std::string& cls);

// An RMSNorm of the family over the hidden size.
ModuleDecl hidden_norm(const ModelConfig& c, const std::string& prefix, std::string name, Role role);

// The torch class of an activation named in config.json, and its op.
struct ActivationDecl {
  std::string cls;
  Activation op;
};
ActivationDecl activation_named(const std::string& hf_name);

}  // namespace strata
