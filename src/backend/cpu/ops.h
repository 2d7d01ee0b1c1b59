// The CPU op set of the Llama family, f32 activations throughout.
//
// Math follows transformers' modeling_llama.py (eager attention) so that
// results match it to float32 rounding. Ops that take a ThreadPool split their
// work over it deterministically: the result does not depend on the number of
// threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "backend/tensor_view.h"

namespace strata::cpu {

// One product of a matmul batch: out[n, w.rows] = x[n, w.cols] @ w^T (+ bias).
struct MatmulOutput {
  MatrixView weight;
  const float* bias = nullptr;  // f32 [w.rows] or null
  float* out = nullptr;         // [n, w.rows], row-major
};

// Runs several products that share the input x ([n, cols], row stride cols)
// in one parallel pass, e.g. q/k/v or gate/up.
void matmul(ThreadPool& pool, const float* x, size_t n, std::span<const MatmulOutput> outputs);

// y = weight * (x * rsqrt(mean(x^2) + eps)) per row of length dim.
void rms_norm(const float* x, const float* weight, size_t rows, size_t dim, float eps, float* y);

// out[i] = table row ids[i] widened to f32. Ids must be validated by the caller.
void embedding(const MatrixView& table, std::span<const int32_t> ids, float* out);

// x += y
void add_inplace(float* x, const float* y, size_t n);

// gate = silu(gate) * up, silu(v) = v / (1 + exp(-v)).
void silu_mul(float* gate, const float* up, size_t n);

// Rotary embedding tables, as LlamaRotaryEmbedding computes them.
class Rope {
 public:
  struct Llama3Scaling {
    float factor = 8.0f;
    float low_freq_factor = 1.0f;
    float high_freq_factor = 4.0f;
    float original_max_position_embeddings = 8192.0f;
  };
  Rope(int head_dim, double theta, const Llama3Scaling* llama3);

  // Rotates heads [count, head_dim] of one token at position pos in place,
  // rotate-half style: x * cos + rotate_half(x) * sin.
  void apply(float* heads, int count, int64_t pos) const;
  int head_dim() const { return head_dim_; }

 private:
  int head_dim_;
  std::vector<float> inv_freq_;  // [head_dim / 2]
};

// Causal attention of T new query tokens of one sequence against its cache.
struct AttentionShape {
  int heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int window = 0;  // sliding window (Mistral): a query sees this many positions; 0 = all
};
// q: [T, heads, head_dim]; keys/values: [kv_heads, capacity, head_dim] holding
// slots 0..past+T-1; out: [T, heads, head_dim]. Query t sits in slot past + t
// and sees slots start..past+t: slots before `start` hold a left-padded row's
// padding (the sliding window counts positions, which start there). scratch
// holds pool.size() x capacity floats, so no memory is allocated per call.
void attention(ThreadPool& pool, const AttentionShape& shape, const float* q, size_t tokens,
               size_t past, size_t start, const float* keys, const float* values, size_t capacity, float* out,
               std::span<float> scratch);

}  // namespace strata::cpu
