// The building blocks of a decoder layer, written once in backend ops: norms,
// attention (grouped heads, rope, per-head q/k norms, window, scale,
// soft-cap) and MLPs (gated or plain). A family chooses among them through
// its description; the math follows modeling_llama.py unless a comment says
// which family differs and how.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/kv_cache.h"
#include "backend/ops.h"
#include "models/architecture.h"
#include "models/causal_lm.h"
#include "models/rope_variants.h"

namespace strata {

struct Linear {
  MatrixView weight;
  const float* bias = nullptr;
};

struct NormWeights {
  const float* weight = nullptr;  // null: the layer has no such norm
  const float* bias = nullptr;    // LayerNorm only
};

// y = norm(x) over rows of dim floats.
void apply_norm(Ops& ops, NormKind kind, float eps, const NormWeights& w, const float* x, size_t rows, size_t dim,
                float* y);

struct AttentionWeights {
  Linear q, k, v, o;
  NormWeights q_norm, k_norm;  // Qwen3: RMSNorm over each head before rope
};

// Where attention reads and writes in the workspace.
struct AttentionBuffers {
  const float* input;  // [tokens, hidden], normalized
  float *q, *k, *v, *heads_out;
  float* out;  // [tokens, hidden]
  std::span<float> scores;
};

struct AttentionSettings {
  AttentionShape shape;     // heads, window, scale, soft-cap of this layer
  NormKind norm = NormKind::rms;  // of the q/k norms
  float norm_eps = 0;
  const RopeTables* rope = nullptr;  // null: positions are learned, not rotary
};

// Causal self-attention of the step's tokens against (and into) the layer's
// KV cache rows.
void attention(const BlockRun& run, int64_t layer, const AttentionSettings& s, const AttentionWeights& w,
               const AttentionBuffers& b);

struct MlpWeights {
  Linear gate;  // null weight: a plain MLP, down(act(up(x)))
  Linear up, down;
};

// out = down(act(gate(x)) * up(x)), or down(act(up(x))) without a gate.
// gate_buffer and up_buffer hold [tokens, intermediate].
void mlp(Ops& ops, Activation act, const MlpWeights& w, const float* x, size_t tokens, float* gate_buffer,
         float* up_buffer, float* out);

}  // namespace strata
