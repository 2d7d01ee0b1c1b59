#include "models/decoder.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "models/building_blocks.h"
#include "models/moe.h"
#include "models/rope_variants.h"
#include "strata/error.h"

namespace strata {
namespace {

// Where each activation buffer lies in a workspace, in floats. The layout
// depends only on the limits, so it is the same on every device of a session
// and an activation moves between devices at unchanged offsets.
struct WorkspaceLayout {
  size_t x, normed, q, k, v, attn, proj, gate, up, logits, scores;
  size_t router, gathered, expert_out;  // sparse layers only: empty for a dense model
  size_t scores_floats;
  size_t total;

  WorkspaceLayout(const ModelConfig& c, const StepLimits& l) {
    const size_t tokens = static_cast<size_t>(l.max_tokens);
    const size_t hidden = static_cast<size_t>(c.hidden_size);
    const size_t q_dim = static_cast<size_t>(c.num_heads * c.head_dim);
    const size_t kv_dim = static_cast<size_t>(c.num_kv_heads * c.head_dim);
    // The widest MLP: the dense one, an expert or the shared expert.
    const size_t inter = static_cast<size_t>(
        std::max({c.intermediate_size, c.moe_intermediate_size, c.shared_expert_intermediate_size}));
    const size_t experts = static_cast<size_t>(c.num_experts);
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
    router = take(experts > 0 ? tokens * experts : 0);
    gathered = take(experts > 0 ? tokens * hidden : 0);
    expert_out = take(experts > 0 ? tokens * hidden : 0);
    total = at;
  }
};

// The buffers of one device's workspace.
struct Workspace {
  float *x, *normed, *q, *k, *v, *attn, *proj, *gate, *up, *logits, *scores;
  float *router, *gathered, *expert_out;
  size_t scores_floats;

  Workspace(float* base, const WorkspaceLayout& w)
      : x(base + w.x), normed(base + w.normed), q(base + w.q), k(base + w.k), v(base + w.v), attn(base + w.attn),
        proj(base + w.proj), gate(base + w.gate), up(base + w.up), logits(base + w.logits), scores(base + w.scores),
        router(base + w.router), gathered(base + w.gathered), expert_out(base + w.expert_out),
        scores_floats(w.scores_floats) {}
};

struct LayerWeights {
  NormWeights attention_norm, attention_output_norm, mlp_norm, mlp_output_norm;
  AttentionWeights attention;
  MlpWeights mlp;  // a dense layer's
  MoeWeights moe;  // a sparse layer's (moe.experts > 0)
  bool sparse() const { return moe.experts > 0; }
};

// Rows [first, first + rows) of a matrix, and of its bias: one part of a
// fused projection (Phi-3's qkv_proj, GPT-2's c_attn).
Linear rows_of(const Linear& fused, int64_t first, int64_t rows) {
  Linear part = fused;
  part.weight = fused.weight.rows_view(first, rows);
  if (fused.bias) part.bias = fused.bias + first;
  return part;
}

class DecoderModel final : public CausalLM {
 public:
  DecoderModel(const ModelConfig& config, const Description& description, std::vector<BlockSpec> blocks,
               WeightSource& weights, uint64_t expert_bytes)
      : config_(config),
        settings_(description.forward),
        rope_(rope_tables(config)),
        blocks_(std::move(blocks)),
        expert_bytes_(expert_bytes) {
    bind(description, weights);
  }

  const ModelConfig& config() const override { return config_; }
  const std::vector<BlockSpec>& blocks() const override { return blocks_; }
  uint64_t block_bytes_per_token(size_t block) const override { return bytes_per_token_[block]; }
  void run_block(size_t block, const BlockRun& run) override;
  WorkspaceRange block_output(size_t block, const StepLimits& limits, const ForwardStep& step) const override;

 private:
  void bind(const Description& description, WeightSource& w);
  uint64_t bind_layer(const ModuleDecl& layer, const std::string& path, WeightSource& w);
  void bind_parts(const ModuleDecl& parent, const std::string& path, LayerWeights& l, MlpWeights& mlp,
                  WeightSource& w);
  void embed_positions(const BlockRun& run, const Workspace& ws);
  void decoder_layer(const BlockRun& run, const Workspace& ws, int64_t layer);
  void final_norm(const BlockRun& run, const Workspace& ws);
  void norm(Ops& ops, const NormWeights& w, const float* x, size_t rows, float* y) const {
    apply_norm(ops, settings_.norm, static_cast<float>(config_.norm_eps), w, x, rows,
               static_cast<size_t>(config_.hidden_size), y);
  }

  ModelConfig config_;
  ForwardSettings settings_;
  RopeTables rope_;
  std::vector<BlockSpec> blocks_;
  std::vector<uint64_t> bytes_per_token_;  // per block
  uint64_t expert_bytes_ = 0;              // one routed expert as held
  MatrixView embed_, positions_, head_;
  NormWeights final_norm_;
  std::vector<LayerWeights> layers_;
  std::vector<int32_t> position_ids_;  // learned positions of the current step (host)
  MoeHostScratch moe_host_;            // routing of the current sparse layer (host)
};

// Binds each block's weights by role, from the description's modules.
void DecoderModel::bind(const Description& d, WeightSource& w) {
  const auto matrix_of = [&](const BlockSpec& b) {
    const WeightSpec& s = b.weights.front();
    return w.matrix(s.name, s.shape[0], s.shape[1]);
  };
  const auto bytes = [](const MatrixView& m) { return m.bytes(); };
  size_t b = 0;
  walk(d.root, "", [&](const ModuleDecl& m, const std::string& path) {
    if (b >= blocks_.size() || path != blocks_[b].module) return;
    const BlockSpec& block = blocks_[b++];
    uint64_t per_token = 0;
    switch (block.role) {
      case Role::embedding:
        embed_ = matrix_of(block);
        per_token = bytes(embed_) / static_cast<uint64_t>(embed_.rows);  // one row
        break;
      case Role::position_embedding:
        positions_ = matrix_of(block);
        per_token = bytes(positions_) / static_cast<uint64_t>(positions_.rows);
        break;
      case Role::decoder_layer: per_token = bind_layer(m, path, w); break;
      case Role::final_norm:
        final_norm_ = {w.vector_f32(block.weights[0].name, config_.hidden_size),
                       block.weights.size() > 1 ? w.vector_f32(block.weights[1].name, config_.hidden_size) : nullptr};
        break;
      case Role::head:
        head_ = matrix_of(block);
        per_token = bytes(head_);
        break;
      default:
        throw Error("internal: block " + block.module + " has no block role");
    }
    bytes_per_token_.push_back(per_token);
  });
  if (b != blocks_.size()) throw Error("internal: the blocks do not follow the description");
}

// Binds a decoder layer's weights and returns the bytes of matrices one
// token reads in it: every dense matrix, and top_k of the experts.
uint64_t DecoderModel::bind_layer(const ModuleDecl& layer, const std::string& path, WeightSource& w) {
  LayerWeights l;
  bind_parts(layer, path, l, l.mlp, w);
  const auto bytes = [](const Linear& m) {
    return m.weight.data ? m.weight.bytes() : 0;
  };
  const auto mlp_bytes = [&](const MlpWeights& m) { return bytes(m.gate) + bytes(m.up) + bytes(m.down); };
  const AttentionWeights& a = l.attention;
  // A fused projection's parts are row views of one matrix: count each part.
  uint64_t per_token = bytes(a.q) + bytes(a.k) + bytes(a.v) + bytes(a.o) + mlp_bytes(l.mlp);
  if (l.sparse()) {
    l.moe.layer = static_cast<int64_t>(layers_.size());
    l.moe.top_k = config_.num_experts_per_tok;
    l.moe.normalize_top_k = config_.norm_topk_prob;
    // A token reads top_k experts.
    per_token += bytes(l.moe.router) + mlp_bytes(l.moe.shared) + bytes(l.moe.shared_gate) +
                 expert_bytes_ * static_cast<uint64_t>(l.moe.top_k);
  }
  layers_.push_back(std::move(l));
  return per_token;
}

// Binds the parts under `parent` by role; gate, up and down go to `mlp`,
// which is the layer's MLP, a routed expert's or the shared expert's.
void DecoderModel::bind_parts(const ModuleDecl& parent, const std::string& path, LayerWeights& l, MlpWeights& mlp,
                              WeightSource& w) {
  const ModelConfig& c = config_;
  for (const ModuleDecl& m : parent.children) {
    const std::string at = plan::join_name(path, m.name);
    const auto vector = [&](size_t p) {
      return p < m.params.size() ? w.vector_f32(plan::join_name(at, m.params[p].name), m.params[p].shape[0]) : nullptr;
    };
    const auto linear = [&] {
      const std::vector<int64_t>& shape = m.params[0].shape;  // as stored
      const int64_t rows = m.conv1d ? shape[1] : shape[0], cols = m.conv1d ? shape[0] : shape[1];
      return Linear{w.matrix(plan::join_name(at, m.params[0].name), rows, cols), vector(1)};
    };
    const int64_t q_rows = c.num_heads * c.head_dim, kv_rows = c.num_kv_heads * c.head_dim;
    switch (m.role) {
      case Role::none: bind_parts(m, at, l, mlp, w); break;  // a container: attention, mlp, experts
      case Role::attention_norm: l.attention_norm = {vector(0), vector(1)}; break;
      case Role::attention_output_norm: l.attention_output_norm = {vector(0), vector(1)}; break;
      case Role::mlp_norm: l.mlp_norm = {vector(0), vector(1)}; break;
      case Role::mlp_output_norm: l.mlp_output_norm = {vector(0), vector(1)}; break;
      case Role::q_norm: l.attention.q_norm = {vector(0), vector(1)}; break;
      case Role::k_norm: l.attention.k_norm = {vector(0), vector(1)}; break;
      case Role::q: l.attention.q = linear(); break;
      case Role::k: l.attention.k = linear(); break;
      case Role::v: l.attention.v = linear(); break;
      case Role::o: l.attention.o = linear(); break;
      case Role::qkv: {
        const Linear fused = linear();
        l.attention.q = rows_of(fused, 0, q_rows);
        l.attention.k = rows_of(fused, q_rows, kv_rows);
        l.attention.v = rows_of(fused, q_rows + kv_rows, kv_rows);
        break;
      }
      case Role::gate: mlp.gate = linear(); break;
      case Role::up: mlp.up = linear(); break;
      case Role::down: mlp.down = linear(); break;
      case Role::gate_up: {
        const Linear fused = linear();
        const int64_t width = fused.weight.rows / 2;
        mlp.gate = rows_of(fused, 0, width);
        mlp.up = rows_of(fused, width, width);
        break;
      }
      case Role::router: l.moe.router = linear(); break;
      case Role::expert: ++l.moe.experts; break;  // fetched once routed (BlockRun::experts)
      case Role::shared_expert: bind_parts(m, at, l, l.moe.shared, w); break;
      case Role::shared_expert_gate: l.moe.shared_gate = linear(); break;
      default: throw Error("internal: " + at + " has a role a decoder layer does not use");
    }
  }
}

void DecoderModel::run_block(size_t block, const BlockRun& run) {
  const Workspace ws(run.workspace, WorkspaceLayout(config_, run.limits));
  const size_t tokens = run.step.tokens();
  const size_t hidden = static_cast<size_t>(config_.hidden_size);
  switch (blocks_[block].role) {
    case Role::embedding:
      run.ops.embedding(embed_, run.step.ids, ws.x);
      // Gemma scales embeddings by sqrt(hidden_size), as a float32 tensor.
      if (settings_.embedding_scale != 1.0f) run.ops.scale(ws.x, settings_.embedding_scale, tokens * hidden);
      return;
    case Role::position_embedding: embed_positions(run, ws); return;
    case Role::decoder_layer: decoder_layer(run, ws, blocks_[block].layer); return;
    case Role::final_norm: final_norm(run, ws); return;
    case Role::head: {
      const size_t logit_rows = block_output(block, run.limits, run.step).count / static_cast<size_t>(config_.vocab_size);
      const MatmulOutput head[] = {{head_, nullptr, ws.logits}};
      run.ops.matmul(ws.normed, logit_rows, head);
      if (settings_.final_softcap > 0)
        run.ops.softcap(ws.logits, settings_.final_softcap, logit_rows * static_cast<size_t>(config_.vocab_size));
      return;
    }
    default: throw Error("internal: block " + blocks_[block].module + " has no block role");
  }
}

WorkspaceRange DecoderModel::block_output(size_t block, const StepLimits& limits, const ForwardStep& step) const {
  const WorkspaceLayout ws(config_, limits);
  const size_t tokens = step.tokens();
  const size_t logit_rows = step.logit_rows();
  const size_t hidden = static_cast<size_t>(config_.hidden_size);
  switch (blocks_[block].role) {
    case Role::final_norm: return {ws.normed, logit_rows * hidden};
    case Role::head: return {ws.logits, logit_rows * static_cast<size_t>(config_.vocab_size)};
    default: return {ws.x, tokens * hidden};
  }
}

// GPT-2: x += wpe[position]; a left-padded row counts positions from its
// first real token, as its decoder layers' rope would.
void DecoderModel::embed_positions(const BlockRun& run, const Workspace& ws) {
  const ForwardStep& step = run.step;
  position_ids_.clear();
  for (const StepSegment& segment : step.segments) {
    const int64_t past = run.cache.length(segment.row), start = run.cache.row_start(segment.row);
    for (int64_t t = 0; t < segment.tokens; ++t) {
      const int64_t position = std::max<int64_t>(past + t - start, 0);
      if (position >= positions_.rows)
        throw Error("position " + std::to_string(position) + " is past the model's " +
                        std::to_string(positions_.rows) + " learned positions",
                    "", "", "lower --ctx or the number of new tokens");
      position_ids_.push_back(static_cast<int32_t>(position));
    }
  }
  run.ops.embedding(positions_, position_ids_, ws.proj);
  run.ops.add_inplace(ws.x, ws.proj, position_ids_.size() * static_cast<size_t>(config_.hidden_size));
}

void DecoderModel::decoder_layer(const BlockRun& run, const Workspace& ws, int64_t layer) {
  const ModelConfig& c = config_;
  const LayerWeights& l = layers_[static_cast<size_t>(layer)];
  const size_t tokens = run.step.tokens();
  const size_t hidden = static_cast<size_t>(c.hidden_size);
  Ops& ops = run.ops;

  AttentionSettings s;
  s.shape = {static_cast<int>(c.num_heads), static_cast<int>(c.num_kv_heads), static_cast<int>(c.head_dim),
             settings_.window.empty() ? 0 : settings_.window[static_cast<size_t>(layer)], settings_.attention_scale,
             settings_.attention_softcap};
  s.norm = settings_.norm;
  s.norm_eps = static_cast<float>(c.norm_eps);
  s.rope = settings_.positions == Positions::rotary ? &rope_ : nullptr;
  norm(ops, l.attention_norm, ws.x, tokens, ws.normed);
  attention(run, layer, s, l.attention,
            {ws.normed, ws.q, ws.k, ws.v, ws.attn, ws.proj, std::span<float>(ws.scores, ws.scores_floats)});
  // Gemma 2 normalizes each sub-block's output before the residual add.
  const auto add_residual = [&](const NormWeights& output_norm) {
    if (output_norm.weight) {
      norm(ops, output_norm, ws.proj, tokens, ws.normed);
      ops.add_inplace(ws.x, ws.normed, tokens * hidden);
    } else {
      ops.add_inplace(ws.x, ws.proj, tokens * hidden);
    }
  };
  add_residual(l.attention_output_norm);
  norm(ops, l.mlp_norm, ws.x, tokens, ws.normed);
  if (l.sparse())
    moe(ops, run.host_ops, settings_.activation, l.moe, *run.experts,
        {ws.normed, ws.router, ws.gathered, ws.gate, ws.up, ws.expert_out, ws.proj}, tokens, hidden, moe_host_);
  else
    mlp(ops, settings_.activation, l.mlp, ws.normed, tokens, ws.gate, ws.up, ws.proj);
  add_residual(l.mlp_output_norm);
}

// The last position of each segment (or every position), normalized: the head's input.
void DecoderModel::final_norm(const BlockRun& run, const Workspace& ws) {
  const ForwardStep& step = run.step;
  const size_t hidden = static_cast<size_t>(config_.hidden_size);
  const float* input = ws.x;
  if (!step.all_logits) {
    size_t end = 0;  // past the segment's last token
    for (size_t i = 0; i < step.segments.size(); ++i) {
      end += static_cast<size_t>(step.segments[i].tokens);
      run.ops.copy(ws.proj + i * hidden, ws.x + (end - 1) * hidden, hidden);
    }
    input = ws.proj;
  }
  norm(run.ops, final_norm_, input, step.logit_rows(), ws.normed);
}

}  // namespace

std::unique_ptr<CausalLM> create_decoder(const ModelConfig& config, const Description& description,
                                         std::vector<BlockSpec> blocks, WeightSource& weights, uint64_t expert_bytes) {
  return std::make_unique<DecoderModel>(config, description, std::move(blocks), weights, expert_bytes);
}

size_t decoder_workspace_floats(const ModelConfig& config, const StepLimits& limits) {
  return WorkspaceLayout(config, limits).total;
}

}  // namespace strata
