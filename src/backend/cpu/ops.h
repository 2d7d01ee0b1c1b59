// The CPU op set, f32 activations throughout (the shared types are in
// backend/ops.h; CpuOps there wraps these functions).
//
// Math follows transformers' modeling files (eager attention) so that
// results match them to float32 rounding. Ops that take a ThreadPool split their
// work over it deterministically: the result does not depend on the number of
// threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "backend/ops.h"
#include "backend/tensor_view.h"
#include "core/thread_pool.h"

namespace strata::cpu {

// Runs several products that share the input x ([n, cols], row stride cols)
// in one parallel pass, e.g. q/k/v or gate/up. In fast mode, products with
// BF16 weights take x rounded to bf16 (ComputeMode in backend/ops.h).
void matmul(ThreadPool& pool, const float* x, size_t n, std::span<const MatmulOutput> outputs,
            ComputeMode mode = ComputeMode::exact);

// y = (weight_offset + weight) * (x * rsqrt(mean(x^2) + eps)) per row of
// length dim; weight_offset is 1 for Gemma's (1 + weight), else 0.
void rms_norm(const float* x, const float* weight, float weight_offset, size_t rows, size_t dim, float eps,
              float* y);

// torch's nn.LayerNorm per row: y = (x - mean) / sqrt(var + eps) * weight + bias,
// var the biased variance; bias may be null.
void layer_norm(const float* x, const float* weight, const float* bias, size_t rows, size_t dim, float eps,
                float* y);

// out[i] = table row ids[i] widened to f32. Ids must be validated by the caller.
void embedding(const MatrixView& table, std::span<const int32_t> ids, float* out);

// x += y
void add_inplace(float* x, const float* y, size_t n);

// gate = act(gate) * up (Activation in backend/ops.h says what each is).
void glu(Activation act, float* gate, const float* up, size_t n);

// x = act(x).
void activate(Activation act, float* x, size_t n);

// x *= factor
void scale(float* x, float factor, size_t n);

// x = tanh(x / cap) * cap
void softcap(float* x, float cap, size_t n);

// q: [T, heads, head_dim]; keys/values: [kv_heads, capacity, head_dim] holding
// slots 0..past+T-1; out: [T, heads, head_dim]. Query t sits in slot past + t
// and sees slots start..past+t: slots before `start` hold a left-padded row's
// padding (the sliding window counts positions, which start there). Scores
// are scaled and soft-capped as AttentionShape says. scratch
// holds pool.size() x capacity floats, so no memory is allocated per call.
void attention(ThreadPool& pool, const AttentionShape& shape, const float* q, size_t tokens,
               size_t past, size_t start, const float* keys, const float* values, size_t capacity, float* out,
               std::span<float> scratch);

}  // namespace strata::cpu
