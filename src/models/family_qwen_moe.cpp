// Qwen2MoeForCausalLM as transformers 4.44 builds it (modeling_qwen2_moe.py)
// and Qwen3MoeForCausalLM as 4.51.3 does (modeling_qwen3_moe.py): the Qwen2
// and Qwen3 decoders whose sparse layers replace the MLP by a MoE block,
//   <P>SparseMoeBlock { gate (the router), experts: ModuleList of <P>MLP
//                       [, shared_expert: <P>MLP, shared_expert_gate] }
// A layer i is sparse unless listed in mlp_only_layers or (i + 1) is not a
// multiple of decoder_sparse_step; a dense layer has a <P>MLP of
// intermediate_size. The router's top-k softmax weights are renormalized
// only with norm_topk_prob. Qwen2-MoE adds a shared expert every token runs,
// scaled by sigmoid(shared_expert_gate(x)).
#include "models/common_modules.h"
#include "models/families.h"

namespace strata {
namespace {

ModuleDecl qwen_mlp(const ModelConfig& c, const std::string& prefix, const ActivationDecl& act, int64_t i) {
  const std::string mlp_cls = prefix + "MLP";
  const int64_t h = c.hidden_size;
  if (!c.is_sparse_layer(i)) return gated_mlp("mlp", mlp_cls, h, c.intermediate_size, act.cls);
  ModuleDecl moe = plain("mlp", prefix + "SparseMoeBlock",
                         {linear("gate", c.num_experts, h, false, Role::router),
                          expert_list(c, [&](std::string name) {
                            return gated_mlp(std::move(name), mlp_cls, h, c.moe_intermediate_size, act.cls);
                          })});
  if (c.shared_expert_intermediate_size > 0) {
    moe.children.push_back(gated_mlp("shared_expert", mlp_cls, h, c.shared_expert_intermediate_size, act.cls));
    moe.children.back().role = Role::shared_expert;
    moe.children.push_back(linear("shared_expert_gate", 1, h, false, Role::shared_expert_gate));
  }
  return moe;
}

ModuleDecl qwen_moe_layer(const ModelConfig& c, const std::string& prefix, const ActivationDecl& act,
                          ModuleDecl attention, int64_t i) {
  return decoder_layer(prefix, i,
                       {std::move(attention), qwen_mlp(c, prefix, act, i),
                        hidden_norm(c, prefix, "input_layernorm", Role::attention_norm),
                        hidden_norm(c, prefix, "post_attention_layernorm", Role::mlp_norm)});
}

}  // namespace

Description describe_qwen2_moe(const ModelConfig& c) {
  const ActivationDecl act = activation_named(c.hidden_act);
  const auto layer = [&](int64_t i) {
    return qwen_moe_layer(c, "Qwen2Moe", act,
                          attention_qkvo(c, "Qwen2MoeAttention", true, false,
                                         {rotary_with_tables(c, "Qwen2MoeRotaryEmbedding")}),
                          i);
  };
  Description d = decoder_stack(c, {"Qwen2Moe", layer, {}, {}});
  d.forward.activation = act.op;
  return d;
}

Description describe_qwen3_moe(const ModelConfig& c) {
  const ActivationDecl act = activation_named(c.hidden_act);
  const auto layer = [&](int64_t i) {
    return qwen_moe_layer(c, "Qwen3Moe", act,
                          attention_qkvo(c, "Qwen3MoeAttention", c.attention_bias, c.attention_bias,
                                         {norm("q_norm", "Qwen3MoeRMSNorm", c.head_dim, false, Role::q_norm),
                                          norm("k_norm", "Qwen3MoeRMSNorm", c.head_dim, false, Role::k_norm)}),
                          i);
  };
  Description d = decoder_stack(c, {"Qwen3Moe", layer, {}, {rotary("rotary_emb", "Qwen3MoeRotaryEmbedding", c.head_dim)}});
  d.forward.activation = act.op;
  return d;
}

}  // namespace strata
