// The Llama family: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM.
//
// One decoder for all three (transformers' modeling_llama.py, modeling_mistral.py
// and modeling_qwen2.py share it): RMSNorm, rotary attention with grouped
// query heads, SwiGLU MLP. The differences are config switches: q/k/v bias
// (Qwen2), attention_bias and mlp_bias (Llama), sliding window (Mistral),
// llama3 rope scaling, tied or untied lm_head.
//
// Blocks: model.embed_tokens, model.layers.{i}, model.norm, lm_head — the
// modules Accelerate's device maps place (a decoder layer is never split).
#include <algorithm>
#include <string>
#include <vector>

#include "backend/ops.h"
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

// One tensor of a decoder layer and the LayerWeights field it binds to: the
// single list both the block description and the binding read.
struct LayerSlot {
  std::string name;
  std::vector<int64_t> shape;
  MatrixView LayerWeights::*matrix = nullptr;
  const float* LayerWeights::*vector = nullptr;
};

std::vector<LayerSlot> layer_slots(const ModelConfig& c, int64_t layer) {
  const std::string p = "model.layers." + std::to_string(layer) + ".";
  const int64_t hidden = c.hidden_size;
  const int64_t q_dim = c.num_heads * c.head_dim;
  const int64_t kv_dim = c.num_kv_heads * c.head_dim;
  const int64_t inter = c.intermediate_size;
  using L = LayerWeights;
  std::vector<LayerSlot> slots{
      {p + "input_layernorm.weight", {hidden}, nullptr, &L::input_norm},
      {p + "self_attn.q_proj.weight", {q_dim, hidden}, &L::q, nullptr},
      {p + "self_attn.k_proj.weight", {kv_dim, hidden}, &L::k, nullptr},
      {p + "self_attn.v_proj.weight", {kv_dim, hidden}, &L::v, nullptr},
      {p + "self_attn.o_proj.weight", {hidden, q_dim}, &L::o, nullptr},
      {p + "post_attention_layernorm.weight", {hidden}, nullptr, &L::post_attention_norm},
      {p + "mlp.gate_proj.weight", {inter, hidden}, &L::gate, nullptr},
      {p + "mlp.up_proj.weight", {inter, hidden}, &L::up, nullptr},
      {p + "mlp.down_proj.weight", {hidden, inter}, &L::down, nullptr},
  };
  if (c.qkv_bias || c.attention_bias) {
    slots.push_back({p + "self_attn.q_proj.bias", {q_dim}, nullptr, &L::q_bias});
    slots.push_back({p + "self_attn.k_proj.bias", {kv_dim}, nullptr, &L::k_bias});
    slots.push_back({p + "self_attn.v_proj.bias", {kv_dim}, nullptr, &L::v_bias});
  }
  if (c.attention_bias) slots.push_back({p + "self_attn.o_proj.bias", {hidden}, nullptr, &L::o_bias});
  if (c.mlp_bias) {
    slots.push_back({p + "mlp.gate_proj.bias", {inter}, nullptr, &L::gate_bias});
    slots.push_back({p + "mlp.up_proj.bias", {inter}, nullptr, &L::up_bias});
    slots.push_back({p + "mlp.down_proj.bias", {hidden}, nullptr, &L::down_bias});
  }
  return slots;
}

// A tied head is the embedding: transformers' tie_weights() makes lm_head
// share it, and HF drops lm_head.weight on save (a file that keeps one anyway
// is overridden by the tie).
std::string head_tensor(const ModelConfig& c) {
  return c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
}

// Where each activation buffer lies in a workspace, in floats. The layout
// depends only on the limits, so it is the same on every device of a session
// and an activation moves between devices at unchanged offsets.
struct WorkspaceLayout {
  size_t x, normed, q, k, v, attn, proj, gate, up, logits, scores;
  size_t scores_floats;
  size_t total;

  WorkspaceLayout(const ModelConfig& c, const StepLimits& l) {
    const size_t tokens = static_cast<size_t>(l.max_tokens);
    const size_t hidden = static_cast<size_t>(c.hidden_size);
    const size_t q_dim = static_cast<size_t>(c.num_heads * c.head_dim);
    const size_t kv_dim = static_cast<size_t>(c.num_kv_heads * c.head_dim);
    const size_t inter = static_cast<size_t>(c.intermediate_size);
    size_t at = 0;
    // Each buffer starts on a 64-byte boundary.
    auto take = [&](size_t floats) {
      const size_t offset = at;
      at += (floats + 15) / 16 * 16;
      return offset;
    };
    x = take(tokens * hidden);
    normed = take(tokens * hidden);
    q = take(tokens * q_dim);
    k = take(tokens * kv_dim);
    v = take(tokens * kv_dim);
    attn = take(tokens * q_dim);
    proj = take(tokens * hidden);
    gate = take(tokens * inter);
    up = take(tokens * inter);
    logits = take(static_cast<size_t>(l.logit_rows * c.vocab_size));
    scores_floats = static_cast<size_t>(l.workers) * static_cast<size_t>(l.capacity);
    scores = take(scores_floats);
    total = at;
  }
};

// The buffers of one device's workspace.
struct Workspace {
  float *x, *normed, *q, *k, *v, *attn, *proj, *gate, *up, *logits, *scores;
  size_t scores_floats;

  Workspace(float* base, const WorkspaceLayout& w)
      : x(base + w.x), normed(base + w.normed), q(base + w.q), k(base + w.k), v(base + w.v), attn(base + w.attn),
        proj(base + w.proj), gate(base + w.gate), up(base + w.up), logits(base + w.logits), scores(base + w.scores),
        scores_floats(w.scores_floats) {}
};

Rope make_rope(const ModelConfig& c) {
  if (!c.rope_llama3) return Rope(static_cast<int>(c.head_dim), c.rope_theta, nullptr);
  const Rope::Llama3Scaling scaling{static_cast<float>(c.rope_llama3->factor),
                                         static_cast<float>(c.rope_llama3->low_freq_factor),
                                         static_cast<float>(c.rope_llama3->high_freq_factor),
                                         static_cast<float>(c.rope_llama3->original_max_position_embeddings)};
  return Rope(static_cast<int>(c.head_dim), c.rope_theta, &scaling);
}

class LlamaModel final : public CausalLM {
 public:
  LlamaModel(const ModelConfig& config, WeightSource& weights, std::vector<BlockSpec> blocks)
      : config_(config), rope_(make_rope(config)), blocks_(std::move(blocks)) {
    bind(weights);
  }

  const ModelConfig& config() const override { return config_; }
  const std::vector<BlockSpec>& blocks() const override { return blocks_; }

  uint64_t block_bytes_per_token(size_t block) const override {
    auto bytes = [](const MatrixView& m) {
      return static_cast<uint64_t>(m.rows * m.cols) * dtype_size(m.dtype);
    };
    if (block == 0) return static_cast<uint64_t>(embed_.cols) * dtype_size(embed_.dtype);
    if (block == blocks_.size() - 1) return bytes(lm_head_);
    if (block == blocks_.size() - 2) return 0;  // the final norm's vector
    const LayerWeights& l = layers_[block - 1];
    return bytes(l.q) + bytes(l.k) + bytes(l.v) + bytes(l.o) + bytes(l.gate) + bytes(l.up) + bytes(l.down);
  }

  void run_block(size_t block, const BlockRun& run) override;
  WorkspaceRange block_output(size_t block, const StepLimits& limits, const ForwardStep& step) const override;

 private:
  void bind(WeightSource& w);
  void attention_block(const BlockRun& run, const Workspace& ws, const LayerWeights& l, int64_t layer);
  void mlp_block(const BlockRun& run, const Workspace& ws, const LayerWeights& l);
  void final_norm(const BlockRun& run, const Workspace& ws);

  ModelConfig config_;
  Rope rope_;
  std::vector<BlockSpec> blocks_;
  MatrixView embed_;
  MatrixView lm_head_;
  const float* final_norm_ = nullptr;
  std::vector<LayerWeights> layers_;
};

void LlamaModel::bind(WeightSource& w) {
  const ModelConfig& c = config_;
  embed_ = w.matrix("model.embed_tokens.weight", c.vocab_size, c.hidden_size);
  final_norm_ = w.vector_f32("model.norm.weight", c.hidden_size);
  const std::string& head = blocks_.back().weights.front().name;
  lm_head_ = head == "model.embed_tokens.weight" ? embed_ : w.matrix(head, c.vocab_size, c.hidden_size);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    LayerWeights l;
    for (const LayerSlot& s : layer_slots(c, i)) {
      if (s.matrix)
        l.*s.matrix = w.matrix(s.name, s.shape[0], s.shape[1]);
      else
        l.*s.vector = w.vector_f32(s.name, s.shape[0]);
    }
    layers_.push_back(l);
  }
}

// Blocks in order: embedding, layers, final norm, head.
void LlamaModel::run_block(size_t block, const BlockRun& run) {
  const Workspace ws(run.workspace, WorkspaceLayout(config_, run.limits));
  const int64_t layer = static_cast<int64_t>(block) - 1;
  if (block == 0) {
    run.ops.embedding(embed_, run.step.ids, ws.x);
  } else if (layer < config_.num_layers) {
    const LayerWeights& l = layers_[static_cast<size_t>(layer)];
    attention_block(run, ws, l, layer);
    mlp_block(run, ws, l);
  } else if (block == blocks_.size() - 2) {
    final_norm(run, ws);
  } else {
    const size_t logit_rows = block_output(block, run.limits, run.step).count / static_cast<size_t>(config_.vocab_size);
    const MatmulOutput head[] = {{lm_head_, nullptr, ws.logits}};
    run.ops.matmul(ws.normed, logit_rows, head);
  }
}

WorkspaceRange LlamaModel::block_output(size_t block, const StepLimits& limits, const ForwardStep& step) const {
  const WorkspaceLayout ws(config_, limits);
  const size_t tokens = static_cast<size_t>(step.rows * step.tokens);
  const size_t logit_rows = step.all_logits ? tokens : static_cast<size_t>(step.rows);
  const size_t hidden = static_cast<size_t>(config_.hidden_size);
  if (block + 2 < blocks_.size()) return {ws.x, tokens * hidden};
  if (block + 2 == blocks_.size()) return {ws.normed, logit_rows * hidden};
  return {ws.logits, logit_rows * static_cast<size_t>(config_.vocab_size)};
}

// The last position of each row (or every position), normalized: the head's input.
void LlamaModel::final_norm(const BlockRun& run, const Workspace& ws) {
  const ForwardStep& step = run.step;
  const size_t hidden = static_cast<size_t>(config_.hidden_size);
  const float* input = ws.x;
  size_t rows = static_cast<size_t>(step.rows * step.tokens);
  if (!step.all_logits) {
    for (int64_t r = 0; r < step.rows; ++r) {
      const float* last = ws.x + (static_cast<size_t>((r + 1) * step.tokens) - 1) * hidden;
      run.ops.copy(ws.proj + static_cast<size_t>(r) * hidden, last, hidden);
    }
    input = ws.proj;
    rows = static_cast<size_t>(step.rows);
  }
  run.ops.rms_norm(input, final_norm_, rows, hidden, static_cast<float>(config_.rms_norm_eps), ws.normed);
}

void LlamaModel::attention_block(const BlockRun& run, const Workspace& ws, const LayerWeights& l, int64_t layer) {
  const ModelConfig& c = config_;
  const ForwardStep& step = run.step;
  KVCache& cache = run.cache;
  const size_t tokens = static_cast<size_t>(step.rows * step.tokens);
  const size_t hidden = static_cast<size_t>(c.hidden_size);
  const size_t head_dim = static_cast<size_t>(c.head_dim);
  const size_t q_dim = static_cast<size_t>(c.num_heads) * head_dim;
  const size_t kv_dim = static_cast<size_t>(c.num_kv_heads) * head_dim;
  const size_t capacity = static_cast<size_t>(cache.capacity());
  const size_t past = static_cast<size_t>(cache.length());

  Ops& ops = run.ops;
  ops.rms_norm(ws.x, l.input_norm, tokens, hidden, static_cast<float>(c.rms_norm_eps), ws.normed);
  const MatmulOutput qkv[] = {{l.q, l.q_bias, ws.q}, {l.k, l.k_bias, ws.k}, {l.v, l.v_bias, ws.v}};
  ops.matmul(ws.normed, tokens, qkv);

  // A left-padded row's positions count from its first real token; the
  // padding's own (negative) positions are clamped: nothing attends to it.
  ops.rope(rope_, ws.q, static_cast<int>(c.num_heads), step.rows, step.tokens, static_cast<int64_t>(past),
           cache.row_starts());
  ops.rope(rope_, ws.k, static_cast<int>(c.num_kv_heads), step.rows, step.tokens, static_cast<int64_t>(past),
           cache.row_starts());
  const AttentionShape shape{static_cast<int>(c.num_heads), static_cast<int>(c.num_kv_heads),
                             static_cast<int>(c.head_dim), static_cast<int>(c.sliding_window)};
  for (int64_t r = 0; r < step.rows; ++r) {
    float* keys = cache.keys(layer, r);
    float* values = cache.values(layer, r);
    const size_t first = static_cast<size_t>(r * step.tokens);
    ops.store_kv(ws.k + first * kv_dim, ws.v + first * kv_dim, static_cast<size_t>(step.tokens),
                 static_cast<int>(c.num_kv_heads), static_cast<int>(c.head_dim), capacity, past, keys, values);
    ops.attention(shape, ws.q + first * q_dim, static_cast<size_t>(step.tokens), past,
                  static_cast<size_t>(cache.row_start(r)), keys, values, capacity, ws.attn + first * q_dim,
                  std::span<float>(ws.scores, ws.scores_floats));
  }

  const MatmulOutput out[] = {{l.o, l.o_bias, ws.proj}};
  ops.matmul(ws.attn, tokens, out);
  ops.add_inplace(ws.x, ws.proj, tokens * hidden);
}

void LlamaModel::mlp_block(const BlockRun& run, const Workspace& ws, const LayerWeights& l) {
  const ModelConfig& c = config_;
  const size_t tokens = static_cast<size_t>(run.step.rows * run.step.tokens);
  const size_t hidden = static_cast<size_t>(c.hidden_size);
  const size_t inter = static_cast<size_t>(c.intermediate_size);
  Ops& ops = run.ops;
  ops.rms_norm(ws.x, l.post_attention_norm, tokens, hidden, static_cast<float>(c.rms_norm_eps), ws.normed);
  const MatmulOutput gate_up[] = {{l.gate, l.gate_bias, ws.gate}, {l.up, l.up_bias, ws.up}};
  ops.matmul(ws.normed, tokens, gate_up);
  ops.silu_mul(ws.gate, ws.up, tokens * inter);
  const MatmulOutput down[] = {{l.down, l.down_bias, ws.proj}};
  ops.matmul(ws.gate, tokens, down);
  ops.add_inplace(ws.x, ws.proj, tokens * hidden);
}

}  // namespace

std::vector<BlockSpec> llama_family_blocks(const ModelConfig& c) {
  std::vector<BlockSpec> blocks;
  // A tied embedding is also the head's matrix: it goes where the head runs.
  blocks.push_back({"model.embed_tokens", {{"model.embed_tokens.weight", {c.vocab_size, c.hidden_size}}}, -1,
                    !c.tie_word_embeddings});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    BlockSpec layer{"model.layers." + std::to_string(i), {}, i};
    for (const LayerSlot& s : layer_slots(c, i)) layer.weights.push_back({s.name, s.shape});
    blocks.push_back(std::move(layer));
  }
  blocks.push_back({"model.norm", {{"model.norm.weight", {c.hidden_size}}}, -1});
  blocks.push_back({"lm_head", {{head_tensor(c), {c.vocab_size, c.hidden_size}}}, -1});
  return blocks;
}

size_t llama_family_workspace_floats(const ModelConfig& config, const StepLimits& limits) {
  return WorkspaceLayout(config, limits).total;
}

std::unique_ptr<CausalLM> create_llama_family(const ModelConfig& config, std::vector<BlockSpec> blocks,
                                              WeightSource& weights) {
  return std::make_unique<LlamaModel>(config, weights, std::move(blocks));
}

}  // namespace strata
