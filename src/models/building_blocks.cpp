#include "models/building_blocks.h"

namespace strata {

void apply_norm(Ops& ops, NormKind kind, float eps, const NormWeights& w, const float* x, size_t rows, size_t dim,
                float* y) {
  switch (kind) {
    case NormKind::rms: ops.rms_norm(x, w.weight, 0.0f, rows, dim, eps, y); return;
    // GemmaRMSNorm: output * (1.0 + weight), in float32.
    case NormKind::rms_plus_one: ops.rms_norm(x, w.weight, 1.0f, rows, dim, eps, y); return;
    case NormKind::layer: ops.layer_norm(x, w.weight, w.bias, rows, dim, eps, y); return;
  }
}

void attention(const BlockRun& run, int64_t layer, const AttentionSettings& s, const AttentionWeights& w,
               const AttentionBuffers& b) {
  const ForwardStep& step = run.step;
  KVCache& cache = run.cache;
  Ops& ops = run.ops;
  const AttentionShape& shape = s.shape;
  const size_t tokens = step.tokens();
  const size_t head_dim = static_cast<size_t>(shape.head_dim);
  const size_t q_dim = static_cast<size_t>(shape.heads) * head_dim;
  const size_t kv_dim = static_cast<size_t>(shape.kv_heads) * head_dim;
  const size_t capacity = static_cast<size_t>(cache.capacity());

  const MatmulOutput qkv[] = {{w.q.weight, w.q.bias, b.q}, {w.k.weight, w.k.bias, b.k}, {w.v.weight, w.v.bias, b.v}};
  ops.matmul(b.input, tokens, qkv);
  // Qwen3 normalizes each head of the queries and keys before rope.
  if (w.q_norm.weight) apply_norm(ops, s.norm, s.norm_eps, w.q_norm, b.q, tokens * static_cast<size_t>(shape.heads), head_dim, b.q);
  if (w.k_norm.weight)
    apply_norm(ops, s.norm, s.norm_eps, w.k_norm, b.k, tokens * static_cast<size_t>(shape.kv_heads), head_dim, b.k);

  // Segment by segment: each row has its own length. A left-padded row's
  // positions count from its first real token; the padding's own (negative)
  // positions are clamped: nothing attends to it.
  size_t first = 0;  // the segment's first token in the step
  for (const StepSegment& segment : step.segments) {
    const int64_t past = cache.length(segment.row), start = cache.row_start(segment.row);
    if (s.rope) {
      // Longrope picks a table by how long the sequence is: by its last position.
      const Rope& rope = s.rope->long_context ? s.rope->for_last_position(past + segment.tokens - 1 - start)
                                              : s.rope->short_context;
      const auto starts = cache.row_starts().subspan(static_cast<size_t>(segment.row), 1);
      ops.rope(rope, b.q + first * q_dim, shape.heads, 1, segment.tokens, past, starts);
      ops.rope(rope, b.k + first * kv_dim, shape.kv_heads, 1, segment.tokens, past, starts);
    }
    float* keys = cache.keys(layer, segment.row);
    float* values = cache.values(layer, segment.row);
    ops.store_kv(b.k + first * kv_dim, b.v + first * kv_dim, static_cast<size_t>(segment.tokens), shape.kv_heads,
                 shape.head_dim, capacity, static_cast<size_t>(past), keys, values);
    ops.attention(shape, b.q + first * q_dim, static_cast<size_t>(segment.tokens), static_cast<size_t>(past),
                  static_cast<size_t>(start), keys, values, capacity, b.heads_out + first * q_dim, b.scores);
    first += static_cast<size_t>(segment.tokens);
  }
  const MatmulOutput out[] = {{w.o.weight, w.o.bias, b.out}};
  ops.matmul(b.heads_out, tokens, out);
}

void mlp(Ops& ops, Activation act, const MlpWeights& w, const float* x, size_t tokens, float* gate_buffer,
         float* up_buffer, float* out) {
  const size_t inter = static_cast<size_t>(w.up.weight.rows);
  float* hidden = gate_buffer;
  if (w.gate.weight.data) {
    const MatmulOutput gate_up[] = {{w.gate.weight, w.gate.bias, gate_buffer}, {w.up.weight, w.up.bias, up_buffer}};
    ops.matmul(x, tokens, gate_up);
    ops.glu(act, gate_buffer, up_buffer, tokens * inter);
  } else {
    // GPT-2: c_proj(act(c_fc(x))).
    const MatmulOutput up[] = {{w.up.weight, w.up.bias, hidden}};
    ops.matmul(x, tokens, up);
    ops.activate(act, hidden, tokens * inter);
  }
  const MatmulOutput down[] = {{w.down.weight, w.down.bias, out}};
  ops.matmul(hidden, tokens, down);
}

}  // namespace strata
