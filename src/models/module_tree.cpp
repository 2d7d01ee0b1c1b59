// Builds the module tree of LlamaForCausalLM, MistralForCausalLM and
// Qwen2ForCausalLM as transformers 4.44 constructs them. The three share the
// decoder layout; they differ in class names, biases and rotary embeddings:
//   - Llama: LlamaModel has a model-level rotary_emb and every LlamaAttention
//     has its own (both register `inv_freq`, float32, non-persistent).
//   - Mistral: only the per-attention rotary_emb, with `inv_freq`.
//   - Qwen2: only the per-attention rotary_emb, with `inv_freq` and the
//     `cos_cached`/`sin_cached` tables of [max_position_embeddings, head_dim]
//     built in torch's default dtype at construction (the model's dtype), all
//     non-persistent; q/k/v carry biases.
// Attention is the eager class name (LlamaAttention), as a model built from
// its config without attn_implementation gets; the name matters to no planner.
#include "models/module_tree.h"

#include "strata/error.h"

namespace strata {
namespace {

using plan::ModuleNode;
using plan::TensorSpec;

// The class-name prefix of an architecture: "Llama", "Mistral", "Qwen2".
std::string family_of(const ModelConfig& config) {
  if (config.architecture == "LlamaForCausalLM") return "Llama";
  if (config.architecture == "MistralForCausalLM") return "Mistral";
  if (config.architecture == "Qwen2ForCausalLM") return "Qwen2";
  throw Error("no module tree for architecture '" + config.architecture + "'", {}, {},
              "strata plans LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM");
}

// The attribute name of a module: the last component of its dotted path.
std::string last_component(const std::string& path) { return path.substr(path.rfind('.') + 1); }

// Builds modules under a path, asking the dtype of each parameter by full name.
class TreeBuilder {
 public:
  TreeBuilder(const ModelConfig& config, const std::function<std::string(const std::string&)>& dtype_of)
      : c_(config), family_(family_of(config)), dtype_of_(dtype_of) {}

  plan::ModuleTree build() {
    plan::ModuleTree tree;
    tree.root = ModuleNode{"", family_ + "ForCausalLM", {}, {}, {}};
    tree.root.children.push_back(model());
    if (c_.tie_word_embeddings) {
      // tie_weights() makes lm_head.weight the embedding's Parameter object:
      // registered at both places, one tensor, so it has the embedding's
      // dtype (a tied checkpoint stores no lm_head.weight to ask about).
      ModuleNode lm_head{"lm_head", "Linear", {}, {}, {}};
      lm_head.params.push_back(TensorSpec{"weight", {c_.vocab_size, c_.hidden_size},
                                          dtype_of_("model.embed_tokens.weight"), false, true});
      tree.root.children.push_back(std::move(lm_head));
      tree.tied.push_back({"lm_head.weight", "model.embed_tokens.weight"});
    } else {
      tree.root.children.push_back(linear("lm_head", c_.vocab_size, c_.hidden_size, false));
    }
    return tree;
  }

 private:
  ModuleNode model() {
    ModuleNode m{"model", family_ + "Model", {}, {}, {}};
    ModuleNode embed{"embed_tokens", "Embedding", {}, {}, {}};
    embed.params.push_back(param("model.embed_tokens", "weight", {c_.vocab_size, c_.hidden_size}));
    m.children.push_back(std::move(embed));
    ModuleNode layers{"layers", "ModuleList", {}, {}, {}};
    for (int64_t i = 0; i < c_.num_layers; ++i) layers.children.push_back(decoder_layer(i));
    m.children.push_back(std::move(layers));
    m.children.push_back(rms_norm("model.norm"));
    if (family_ == "Llama") m.children.push_back(rotary("model.rotary_emb"));
    return m;
  }

  ModuleNode decoder_layer(int64_t i) {
    const std::string path = "model.layers." + std::to_string(i);
    ModuleNode layer{std::to_string(i), family_ + "DecoderLayer", {}, {}, {}};
    layer.children.push_back(attention(path + ".self_attn"));
    layer.children.push_back(mlp(path + ".mlp"));
    layer.children.push_back(rms_norm(path + ".input_layernorm"));
    layer.children.push_back(rms_norm(path + ".post_attention_layernorm"));
    return layer;
  }

  ModuleNode attention(const std::string& path) {
    ModuleNode a{"self_attn", family_ + "Attention", {}, {}, {}};
    const int64_t q = c_.num_heads * c_.head_dim, kv = c_.num_kv_heads * c_.head_dim, h = c_.hidden_size;
    // Llama's attention_bias covers all four projections, Qwen2's biases only q/k/v.
    const bool qkv_bias = c_.attention_bias || c_.qkv_bias;
    a.children.push_back(linear(path + ".q_proj", q, h, qkv_bias));
    a.children.push_back(linear(path + ".k_proj", kv, h, qkv_bias));
    a.children.push_back(linear(path + ".v_proj", kv, h, qkv_bias));
    a.children.push_back(linear(path + ".o_proj", h, q, c_.attention_bias));
    a.children.push_back(rotary(path + ".rotary_emb"));
    return a;
  }

  ModuleNode mlp(const std::string& path) {
    ModuleNode m{"mlp", family_ + "MLP", {}, {}, {}};
    const int64_t h = c_.hidden_size, ffn = c_.intermediate_size;
    m.children.push_back(linear(path + ".gate_proj", ffn, h, c_.mlp_bias));
    m.children.push_back(linear(path + ".up_proj", ffn, h, c_.mlp_bias));
    m.children.push_back(linear(path + ".down_proj", h, ffn, c_.mlp_bias));
    m.children.push_back(ModuleNode{"act_fn", "SiLU", {}, {}, {}});  // ACT2FN["silu"] is nn.SiLU
    return m;
  }

  ModuleNode rotary(const std::string& path) {
    ModuleNode r{last_component(path), family_ + "RotaryEmbedding", {}, {}, {}};
    // inv_freq = 1 / base^(arange(0, dim, 2) / dim): head_dim / 2 floats,
    // computed with .float() whatever the model dtype (llama3 scaling keeps the shape).
    r.buffers.push_back(TensorSpec{"inv_freq", {c_.head_dim / 2}, "float32", true, false});
    if (family_ == "Qwen2") {
      const std::string built_in = dtype_of_("model.embed_tokens.weight");
      const std::vector<int64_t> table{c_.max_position_embeddings, c_.head_dim};
      r.buffers.push_back(TensorSpec{"cos_cached", table, built_in, true, false});
      r.buffers.push_back(TensorSpec{"sin_cached", table, built_in, true, false});
    }
    return r;
  }

  ModuleNode rms_norm(const std::string& path) {
    ModuleNode n{last_component(path), family_ + "RMSNorm", {}, {}, {}};
    n.params.push_back(param(path, "weight", {c_.hidden_size}));
    return n;
  }

  // nn.Linear(in, out): weight [out, in], then bias [out] when present.
  ModuleNode linear(const std::string& path, int64_t out, int64_t in, bool bias) {
    ModuleNode l{last_component(path), "Linear", {}, {}, {}};
    l.params.push_back(param(path, "weight", {out, in}));
    if (bias) l.params.push_back(param(path, "bias", {out}));
    return l;
  }

  TensorSpec param(const std::string& module_path, const std::string& name, std::vector<int64_t> shape) {
    return TensorSpec{name, std::move(shape), dtype_of_(module_path + "." + name), false, true};
  }

  const ModelConfig& c_;
  std::string family_;
  const std::function<std::string(const std::string&)>& dtype_of_;
};

}  // namespace

plan::ModuleTree module_tree_for(const ModelConfig& config,
                                 const std::function<std::string(const std::string& tensor_name)>& torch_dtype_of) {
  return TreeBuilder(config, torch_dtype_of).build();
}

std::vector<std::string> no_split_classes_for(const ModelConfig& config) {
  return {family_of(config) + "DecoderLayer"};
}

}  // namespace strata
