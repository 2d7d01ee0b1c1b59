// The Llama family: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM.
//
// One decoder for all three (transformers' modeling_llama.py, modeling_mistral.py
// and modeling_qwen2.py share it): RMSNorm, rotary attention with grouped
// query heads, SwiGLU MLP. The differences are config switches: q/k/v bias
// (Qwen2), attention_bias and mlp_bias (Llama), sliding window (Mistral),
// llama3 rope scaling, tied or untied lm_head.
#include <algorithm>
#include <string>
#include <vector>

#include "backend/cpu/ops.h"
#include "models/causal_lm.h"
#include "strata/error.h"

namespace strata {
namespace {

struct LayerWeights {
  const float* input_norm = nullptr;
  const float* post_attention_norm = nullptr;
  MatrixView q, k, v, o, gate, up, down;
  const float* q_bias = nullptr;
  const float* k_bias = nullptr;
  const float* v_bias = nullptr;
  const float* o_bias = nullptr;
  const float* gate_bias = nullptr;
  const float* up_bias = nullptr;
  const float* down_bias = nullptr;
};

// Activation buffers, grown to the largest step seen and then reused.
struct Workspace {
  std::vector<float> x, normed, q, k, v, attn, proj, gate, up, logits, scores;

  void reserve(size_t tokens, const ModelConfig& c, size_t logit_rows, size_t workers, size_t capacity) {
    auto grow = [](std::vector<float>& buffer, size_t size) {
      if (buffer.size() < size) buffer.resize(size);
    };
    const size_t hidden = static_cast<size_t>(c.hidden_size);
    const size_t q_dim = static_cast<size_t>(c.num_heads * c.head_dim);
    const size_t kv_dim = static_cast<size_t>(c.num_kv_heads * c.head_dim);
    grow(x, tokens * hidden);
    grow(normed, tokens * hidden);
    grow(q, tokens * q_dim);
    grow(k, tokens * kv_dim);
    grow(v, tokens * kv_dim);
    grow(attn, tokens * q_dim);
    grow(proj, tokens * hidden);
    grow(gate, tokens * static_cast<size_t>(c.intermediate_size));
    grow(up, tokens * static_cast<size_t>(c.intermediate_size));
    grow(logits, logit_rows * static_cast<size_t>(c.vocab_size));
    grow(scores, workers * capacity);
  }
};

cpu::Rope make_rope(const ModelConfig& c) {
  if (!c.rope_llama3) return cpu::Rope(static_cast<int>(c.head_dim), c.rope_theta, nullptr);
  const cpu::Rope::Llama3Scaling scaling{static_cast<float>(c.rope_llama3->factor),
                                         static_cast<float>(c.rope_llama3->low_freq_factor),
                                         static_cast<float>(c.rope_llama3->high_freq_factor),
                                         static_cast<float>(c.rope_llama3->original_max_position_embeddings)};
  return cpu::Rope(static_cast<int>(c.head_dim), c.rope_theta, &scaling);
}

class LlamaModel final : public CausalLM {
 public:
  LlamaModel(const ModelConfig& config, WeightSource& weights) : config_(config), rope_(make_rope(config)) {
    bind(weights);
  }

  const ModelConfig& config() const override { return config_; }

  uint64_t weight_bytes_per_token() const override {
    auto bytes = [](const MatrixView& m) {
      return static_cast<uint64_t>(m.rows * m.cols) * dtype_size(m.dtype);
    };
    uint64_t total = static_cast<uint64_t>(embed_.cols) * dtype_size(embed_.dtype) + bytes(lm_head_);
    for (const auto& l : layers_)
      total += bytes(l.q) + bytes(l.k) + bytes(l.v) + bytes(l.o) + bytes(l.gate) + bytes(l.up) + bytes(l.down);
    return total;
  }

  std::span<const float> forward(ThreadPool& pool, KVCache& cache, const ForwardStep& step) override;

 private:
  void bind(WeightSource& w);
  void attention_block(ThreadPool& pool, KVCache& cache, const LayerWeights& l, int64_t layer,
                       const ForwardStep& step);
  void mlp_block(ThreadPool& pool, const LayerWeights& l, size_t tokens);

  ModelConfig config_;
  cpu::Rope rope_;
  MatrixView embed_;
  MatrixView lm_head_;
  const float* final_norm_ = nullptr;
  std::vector<LayerWeights> layers_;
  Workspace ws_;
};

void LlamaModel::bind(WeightSource& w) {
  const ModelConfig& c = config_;
  const int64_t hidden = c.hidden_size;
  const int64_t q_dim = c.num_heads * c.head_dim;
  const int64_t kv_dim = c.num_kv_heads * c.head_dim;
  embed_ = w.matrix("model.embed_tokens.weight", c.vocab_size, hidden);
  final_norm_ = w.vector_f32("model.norm.weight", hidden);
  // A tied head has no lm_head.weight of its own (HF drops it on save).
  if (!c.tie_word_embeddings || w.has("lm_head.weight"))
    lm_head_ = w.matrix("lm_head.weight", c.vocab_size, hidden);
  else
    lm_head_ = embed_;

  auto bias = [&](bool present, const std::string& name, int64_t size) -> const float* {
    return present ? w.vector_f32(name, size) : nullptr;
  };
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerWeights l;
    l.input_norm = w.vector_f32(p + "input_layernorm.weight", hidden);
    l.post_attention_norm = w.vector_f32(p + "post_attention_layernorm.weight", hidden);
    l.q = w.matrix(p + "self_attn.q_proj.weight", q_dim, hidden);
    l.k = w.matrix(p + "self_attn.k_proj.weight", kv_dim, hidden);
    l.v = w.matrix(p + "self_attn.v_proj.weight", kv_dim, hidden);
    l.o = w.matrix(p + "self_attn.o_proj.weight", hidden, q_dim);
    l.gate = w.matrix(p + "mlp.gate_proj.weight", c.intermediate_size, hidden);
    l.up = w.matrix(p + "mlp.up_proj.weight", c.intermediate_size, hidden);
    l.down = w.matrix(p + "mlp.down_proj.weight", hidden, c.intermediate_size);
    const bool qkv_bias = c.qkv_bias || c.attention_bias;
    l.q_bias = bias(qkv_bias, p + "self_attn.q_proj.bias", q_dim);
    l.k_bias = bias(qkv_bias, p + "self_attn.k_proj.bias", kv_dim);
    l.v_bias = bias(qkv_bias, p + "self_attn.v_proj.bias", kv_dim);
    l.o_bias = bias(c.attention_bias, p + "self_attn.o_proj.bias", hidden);
    l.gate_bias = bias(c.mlp_bias, p + "mlp.gate_proj.bias", c.intermediate_size);
    l.up_bias = bias(c.mlp_bias, p + "mlp.up_proj.bias", c.intermediate_size);
    l.down_bias = bias(c.mlp_bias, p + "mlp.down_proj.bias", hidden);
    layers_.push_back(l);
  }
}

std::span<const float> LlamaModel::forward(ThreadPool& pool, KVCache& cache, const ForwardStep& step) {
  const ModelConfig& c = config_;
  const size_t tokens = static_cast<size_t>(step.rows * step.tokens);
  if (step.ids.size() != tokens) throw Error("forward: expected " + std::to_string(tokens) + " ids");
  if (step.rows != cache.rows()) throw Error("forward: batch rows do not match the KV cache");
  if (cache.length() + step.tokens > cache.capacity())
    throw Error("context full: " + std::to_string(cache.length() + step.tokens) + " tokens exceed the capacity of " +
                    std::to_string(cache.capacity()),
                "", "", "raise the context size");
  for (const int32_t id : step.ids)
    if (id < 0 || id >= c.vocab_size)
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                  std::to_string(c.vocab_size) + ")");

  const size_t logit_rows = step.all_logits ? tokens : static_cast<size_t>(step.rows);
  ws_.reserve(tokens, c, logit_rows, static_cast<size_t>(pool.size()), static_cast<size_t>(cache.capacity()));
  const size_t hidden = static_cast<size_t>(c.hidden_size);

  cpu::embedding(embed_, step.ids, ws_.x.data());
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    const LayerWeights& l = layers_[static_cast<size_t>(layer)];
    attention_block(pool, cache, l, layer, step);
    mlp_block(pool, l, tokens);
  }
  cache.set_length(cache.length() + step.tokens);

  // Final norm and head, on every position or on each row's last one.
  const float* head_input = ws_.x.data();
  if (!step.all_logits) {
    for (int64_t r = 0; r < step.rows; ++r) {
      const float* last = ws_.x.data() + (static_cast<size_t>((r + 1) * step.tokens) - 1) * hidden;
      std::copy(last, last + hidden, ws_.proj.data() + static_cast<size_t>(r) * hidden);
    }
    head_input = ws_.proj.data();
  }
  cpu::rms_norm(head_input, final_norm_, logit_rows, hidden, static_cast<float>(c.rms_norm_eps), ws_.normed.data());
  const cpu::MatmulOutput head[] = {{lm_head_, nullptr, ws_.logits.data()}};
  cpu::matmul(pool, ws_.normed.data(), logit_rows, head);
  return {ws_.logits.data(), logit_rows * static_cast<size_t>(c.vocab_size)};
}

void LlamaModel::attention_block(ThreadPool& pool, KVCache& cache, const LayerWeights& l, int64_t layer,
                                 const ForwardStep& step) {
  const ModelConfig& c = config_;
  const size_t tokens = static_cast<size_t>(step.rows * step.tokens);
  const size_t hidden = static_cast<size_t>(c.hidden_size);
  const size_t head_dim = static_cast<size_t>(c.head_dim);
  const size_t q_dim = static_cast<size_t>(c.num_heads) * head_dim;
  const size_t kv_dim = static_cast<size_t>(c.num_kv_heads) * head_dim;
  const size_t capacity = static_cast<size_t>(cache.capacity());
  const size_t past = static_cast<size_t>(cache.length());

  cpu::rms_norm(ws_.x.data(), l.input_norm, tokens, hidden, static_cast<float>(c.rms_norm_eps), ws_.normed.data());
  const cpu::MatmulOutput qkv[] = {{l.q, l.q_bias, ws_.q.data()},
                                   {l.k, l.k_bias, ws_.k.data()},
                                   {l.v, l.v_bias, ws_.v.data()}};
  cpu::matmul(pool, ws_.normed.data(), tokens, qkv);

  for (int64_t r = 0; r < step.rows; ++r) {
    float* keys = cache.keys(layer, r);
    float* values = cache.values(layer, r);
    for (int64_t t = 0; t < step.tokens; ++t) {
      const size_t token = static_cast<size_t>(r * step.tokens + t);
      const int64_t pos = static_cast<int64_t>(past) + t;
      rope_.apply(ws_.q.data() + token * q_dim, static_cast<int>(c.num_heads), pos);
      rope_.apply(ws_.k.data() + token * kv_dim, static_cast<int>(c.num_kv_heads), pos);
      // Scatter this token's heads into the cache's [kv_head][position] layout.
      for (int64_t h = 0; h < c.num_kv_heads; ++h) {
        const size_t src = token * kv_dim + static_cast<size_t>(h) * head_dim;
        const size_t dst = (static_cast<size_t>(h) * capacity + static_cast<size_t>(pos)) * head_dim;
        std::copy_n(ws_.k.data() + src, head_dim, keys + dst);
        std::copy_n(ws_.v.data() + src, head_dim, values + dst);
      }
    }
    const cpu::AttentionShape shape{static_cast<int>(c.num_heads), static_cast<int>(c.num_kv_heads),
                                    static_cast<int>(c.head_dim), static_cast<int>(c.sliding_window)};
    const size_t first = static_cast<size_t>(r * step.tokens);
    cpu::attention(pool, shape, ws_.q.data() + first * q_dim, static_cast<size_t>(step.tokens), past, keys,
                   values, capacity, ws_.attn.data() + first * q_dim, ws_.scores);
  }

  const cpu::MatmulOutput out[] = {{l.o, l.o_bias, ws_.proj.data()}};
  cpu::matmul(pool, ws_.attn.data(), tokens, out);
  cpu::add_inplace(ws_.x.data(), ws_.proj.data(), tokens * hidden);
}

void LlamaModel::mlp_block(ThreadPool& pool, const LayerWeights& l, size_t tokens) {
  const ModelConfig& c = config_;
  const size_t hidden = static_cast<size_t>(c.hidden_size);
  const size_t inter = static_cast<size_t>(c.intermediate_size);
  cpu::rms_norm(ws_.x.data(), l.post_attention_norm, tokens, hidden, static_cast<float>(c.rms_norm_eps),
                ws_.normed.data());
  const cpu::MatmulOutput gate_up[] = {{l.gate, l.gate_bias, ws_.gate.data()}, {l.up, l.up_bias, ws_.up.data()}};
  cpu::matmul(pool, ws_.normed.data(), tokens, gate_up);
  cpu::silu_mul(ws_.gate.data(), ws_.up.data(), tokens * inter);
  const cpu::MatmulOutput down[] = {{l.down, l.down_bias, ws_.proj.data()}};
  cpu::matmul(pool, ws_.gate.data(), tokens, down);
  cpu::add_inplace(ws_.x.data(), ws_.proj.data(), tokens * hidden);
}

}  // namespace

std::unique_ptr<CausalLM> create_llama_family(const ModelConfig& config, WeightSource& weights) {
  return std::make_unique<LlamaModel>(config, weights);
}

}  // namespace strata
