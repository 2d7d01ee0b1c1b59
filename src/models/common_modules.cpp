#include "models/common_modules.h"

#include "strata/error.h"

namespace strata {

Description decoder_stack(const ModelConfig& c, const DecoderStack& stack) {
  ModuleDecl model = plain("model", stack.prefix + "Model");
  model.children.push_back(embedding("embed_tokens", c.vocab_size, c.hidden_size, Role::embedding));
  for (const ModuleDecl& m : stack.extras_after_embedding) model.children.push_back(m);
  ModuleDecl layers = plain("layers", "ModuleList");
  for (int64_t i = 0; i < c.num_layers; ++i) layers.children.push_back(stack.layer(i));
  model.children.push_back(std::move(layers));
  model.children.push_back(hidden_norm(c, stack.prefix, "norm", Role::final_norm));
  for (const ModuleDecl& m : stack.extras_after_norm) model.children.push_back(m);

  Description d;
  d.root = plain("", stack.prefix + "ForCausalLM", {std::move(model)});
  d.root.children.push_back(linear("lm_head", c.vocab_size, c.hidden_size, false, Role::head));
  if (c.tie_word_embeddings) d.tied = {{"lm_head.weight", "model.embed_tokens.weight"}};
  d.no_split = stack.prefix + "DecoderLayer";
  return d;
}

ModuleDecl decoder_layer(const std::string& prefix, int64_t layer, std::vector<ModuleDecl> children) {
  ModuleDecl m = plain(std::to_string(layer), prefix + "DecoderLayer", std::move(children));
  m.role = Role::decoder_layer;
  return m;
}

ModuleDecl llama_layer(const ModelConfig& c, const LlamaLayer& l, int64_t i) {
  std::vector<ModuleDecl> children{
      attention_qkvo(c, l.prefix + "Attention", l.qkv_bias, l.o_bias,
                     l.attention_extras ? l.attention_extras() : std::vector<ModuleDecl>{}),
      gated_mlp(c, l.prefix + "MLP", l.mlp_bias, l.act_cls)};
  for (const auto& [name, role] : l.norms) children.push_back(hidden_norm(c, l.prefix, name, role));
  return decoder_layer(l.prefix, i, std::move(children));
}

ModuleDecl attention_qkvo(const ModelConfig& c, const std::string& cls, bool qkv_bias, bool o_bias,
                          std::vector<ModuleDecl> extras) {
  const int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim, h = c.hidden_size;
  ModuleDecl a = plain("self_attn", cls,
                       {linear("q_proj", q, h, qkv_bias, Role::q), linear("k_proj", kv, h, qkv_bias, Role::k),
                        linear("v_proj", kv, h, qkv_bias, Role::v), linear("o_proj", h, q, o_bias, Role::o)});
  for (ModuleDecl& m : extras) a.children.push_back(std::move(m));
  return a;
}

namespace {

ModuleDecl gated(std::string name, const std::string& cls, int64_t h, int64_t ffn, bool bias,
                 const std::string& act_cls) {
  return plain(std::move(name), cls,
               {linear("gate_proj", ffn, h, bias, Role::gate), linear("up_proj", ffn, h, bias, Role::up),
                linear("down_proj", h, ffn, bias, Role::down), plain("act_fn", act_cls)});
}

}  // namespace

ModuleDecl gated_mlp(const ModelConfig& c, const std::string& cls, bool bias, const std::string& act_cls) {
  return gated("mlp", cls, c.hidden_size, c.intermediate_size, bias, act_cls);
}

ModuleDecl gated_mlp(std::string name, const std::string& cls, int64_t hidden, int64_t width,
                     const std::string& act_cls) {
  return gated(std::move(name), cls, hidden, width, false, act_cls);
}

ModuleDecl expert_list(const ModelConfig& c, const std::function<ModuleDecl(std::string name)>& expert) {
  ModuleDecl experts = plain("experts", "ModuleList");
  for (int64_t e = 0; e < c.num_experts; ++e) {
    experts.children.push_back(expert(std::to_string(e)));
    experts.children.back().role = Role::expert;
  }
  return experts;
}

ModuleDecl rotary_with_tables(const ModelConfig& c, const std::string& cls) {
  ModuleDecl r = rotary("rotary_emb", cls, c.head_dim);
  for (const char* table : {"cos_cached", "sin_cached"})
    r.buffers.push_back({table, {c.max_position_embeddings, c.head_dim}, kModelDtype, false});
  return r;
}

ModuleDecl hidden_norm(const ModelConfig& c, const std::string& prefix, std::string name, Role role) {
  return norm(std::move(name), prefix + "RMSNorm", c.hidden_size, false, role);
}

ActivationDecl activation_named(const std::string& hf_name) {
  // transformers' ACT2FN: "silu" is nn.SiLU; "gelu_pytorch_tanh" and
  // "gelu_new" are the same tanh approximation in two classes.
  if (hf_name == "silu") return {"SiLU", Activation::silu};
  if (hf_name == "gelu_pytorch_tanh") return {"PytorchGELUTanh", Activation::gelu_tanh};
  if (hf_name == "gelu_new") return {"NewGELUActivation", Activation::gelu_tanh};
  throw Error("unsupported activation '" + hf_name + "'", "", "",
              "strata computes silu, gelu_pytorch_tanh and gelu_new");
}

}  // namespace strata
