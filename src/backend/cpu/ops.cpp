#include "backend/cpu/ops.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <vector>

#include "backend/cpu/kernels.h"
#include "strata/error.h"

namespace strata::cpu {

namespace {

// Rows of x processed together while one block of weights stays in cache.
constexpr size_t kRowBlock = 64;

// Below this many multiply-adds a product runs on the calling thread alone:
// waking workers costs more than the work. The split never changes results.
constexpr size_t kMinParallelMacs = 1 << 15;

// Up to this many x rows, quantized weights are widened in the tiles'
// registers rather than into f32 rows first.
constexpr size_t kQuantTileRows = 4;

// Products sharing one input in a single matmul call (q/k/v is the most).
constexpr size_t kMaxMatmulOutputs = 8;

// sqrt(2/pi) rounded once to float, as torch's kBeta (M_SQRT2 * M_2_SQRTPI * 0.5).
constexpr float kSqrt2OverPi = static_cast<float>(std::numbers::sqrt2 * std::numbers::inv_sqrtpi);

// The activations in float32, in torch's order of operations (its CPU
// GeluKernel for approximate="tanh": 0.5 * x * (1 + tanh(kBeta * (x + kKappa * x^3)))).
float silu(float v) { return v / (1.0f + std::exp(-v)); }
float gelu_tanh(float v) {
  const float cube = v * v * v;
  return 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * cube)));
}

// The product's input: x, and in fast mode for BF16 weights x rounded to
// bf16, as bf16 (for the AVX512-BF16 tiles) or widened back to f32.
struct MatmulInput {
  const float* x = nullptr;
  const uint16_t* x_bf16 = nullptr;
  const float* x_rounded = nullptr;
  FastBf16Kernels fast{};
  // Fast mode with quantized weights: x in int8 blocks of 32 and their scales
  // (xq4: the same levels in the 4-bit dot's order).
  const int8_t* xq = nullptr;
  const int8_t* xq4 = nullptr;
  const float* xd = nullptr;
  const int32_t* xs = nullptr;
};

// out[i * out_stride + j] for rows j in [row_begin, row_end) of a plain matrix.
void product_rows(const MatmulKernels& kernels, const MatmulInput& in, size_t n, const MatrixView& w,
                  int64_t row_begin, int64_t row_end, float* out_base, size_t out_stride) {
  const bool fast = w.dtype == DType::BF16 && (in.x_bf16 || in.x_rounded);
  const TileFn tile = kernels.tile_for(w.dtype);
  const float* x = fast && in.x_rounded ? in.x_rounded : in.x;
  const size_t k = static_cast<size_t>(w.cols);
  // Several x rows: the kernel set's blocked product where it has one (the
  // AVX512-BF16 tiles of fast mode have none).
  const GemmFn gemm = n > 1 && !(fast && in.x_bf16) ? kernels.gemm_for(w.dtype) : nullptr;
  if (gemm) {
    gemm(x, k, n, w.row(row_begin), k, row_end - row_begin, k, out_base + row_begin, out_stride);
    return;
  }
  const int64_t tile_w = n == 1 ? kernels.tile_w_single : kernels.tile_w;
  for (size_t i0 = 0; i0 < n; i0 += kRowBlock) {
    const size_t i_end = std::min(n, i0 + kRowBlock);
    for (int64_t j = row_begin; j < row_end; j += tile_w) {
      const int nw = static_cast<int>(std::min<int64_t>(tile_w, row_end - j));
      for (size_t i = i0; i < i_end; i += static_cast<size_t>(kernels.tile_x)) {
        const int nx = static_cast<int>(std::min<size_t>(static_cast<size_t>(kernels.tile_x), i_end - i));
        float* out = out_base + i * out_stride + static_cast<size_t>(j);
        if (fast && in.x_bf16)
          in.fast.tile(in.x_bf16 + i * k, k, nx, static_cast<const uint16_t*>(w.row(j)), k, nw, k, out, out_stride);
        else
          tile(x + i * k, k, nx, w.row(j), k, nw, k, out, out_stride);
      }
    }
  }
}

// A quantized matrix, one of three ways: in fast mode, integer dot products
// of the int8-rounded x and the weights, where the layout allows; for a few
// x rows (decoding), the tiles widening the weights in their registers; for
// many (a prompt), kDequantRows rows at a time dequantized into f32 (in a
// buffer of this thread that only grows) for the blocked f32 product. The
// last two sum each output as the f32 tiles do, so exact results are those
// of the dequantized matrix, bit for bit, however the rows are split.
void quantized_product_rows(const MatmulKernels& kernels, const MatmulInput& in, size_t n, const MatrixView& w,
                            int64_t row_begin, int64_t row_end, float* out, size_t out_stride) {
  if (in.xq && kernels.dot_quant && quant_dot_supports(*w.quant, w.cols)) {
    const auto k = static_cast<size_t>(w.cols);
    const QuantPlanes p = w.planes();
    const auto* base = static_cast<const uint8_t*>(w.data);
    const auto first = static_cast<size_t>(w.first_row + row_begin);
    const size_t scale_row = static_cast<size_t>(p.groups) * 2;
    for (size_t i = 0; i < n; ++i)
      kernels.dot_quant((w.quant->bits == 4 ? in.xq4 : in.xq) + i * k, in.xd + i * k / 32, in.xs + i * k / 32, base + p.codes + first * p.code_row,
                        p.code_row, base + p.scales + first * scale_row, scale_row, p.groups, w.quant->bits,
                        static_cast<int>(row_end - row_begin), out + i * out_stride + static_cast<size_t>(row_begin));
    return;
  }
  if (kernels.tile_quant && n <= kQuantTileRows && quant_tile_supports(*w.quant)) {
    const int64_t tile_w = n == 1 ? kernels.tile_w_single : kernels.tile_w;
    for (int64_t j = row_begin; j < row_end; j += tile_w) {
      const int nw = static_cast<int>(std::min<int64_t>(tile_w, row_end - j));
      for (size_t i = 0; i < n; i += static_cast<size_t>(kernels.tile_x)) {
        const int nx = static_cast<int>(std::min<size_t>(static_cast<size_t>(kernels.tile_x), n - i));
        kernels.tile_quant(in.x + i * static_cast<size_t>(w.cols), static_cast<size_t>(w.cols), nx, w, j, nw,
                           out + i * out_stride + static_cast<size_t>(j), out_stride);
      }
    }
    return;
  }
  constexpr int64_t kDequantRows = 16;
  thread_local std::vector<float> rows;
  rows.resize(static_cast<size_t>(kDequantRows * w.cols));
  const MatmulInput exact{.x = in.x};
  for (int64_t j = row_begin; j < row_end; j += kDequantRows) {
    const int64_t count = std::min(kDequantRows, row_end - j);
    if (kernels.dequant_quant && quant_tile_supports(*w.quant))
      kernels.dequant_quant(w, j, j + count, rows.data());
    else
      w.dequantize(j, j + count, rows.data());
    const MatrixView chunk{DType::F32, rows.data(), count, w.cols};
    product_rows(kernels, exact, n, chunk, 0, count, out + j, out_stride);
  }
}

void matmul_rows(const MatmulKernels& kernels, const MatmulInput& in, size_t n, const MatmulOutput& job,
                 int64_t row_begin, int64_t row_end) {
  const MatrixView& w = job.weight;
  const size_t out_stride = static_cast<size_t>(w.rows);
  if (w.quant)
    quantized_product_rows(kernels, in, n, w, row_begin, row_end, job.out, out_stride);
  else
    product_rows(kernels, in, n, w, row_begin, row_end, job.out, out_stride);
  if (job.bias) {
    for (size_t i = 0; i < n; ++i)
      for (int64_t j = row_begin; j < row_end; ++j) job.out[i * out_stride + static_cast<size_t>(j)] += job.bias[j];
  }
}

// Fast mode: x rounded to bf16 once per call, into buffers of the calling
// thread that only grow (no allocation per token).
MatmulInput fast_input(const float* x, size_t count) {
  thread_local std::vector<uint16_t> bf16;
  thread_local std::vector<float> rounded;
  MatmulInput in;
  in.x = x;
  in.fast = fast_bf16_kernels();
  if (in.fast.tile) {
    bf16.resize(count);
    in.fast.round(x, bf16.data(), count);
    in.x_bf16 = bf16.data();
  } else {
    rounded.resize(count);
    for (size_t i = 0; i < count; ++i) rounded[i] = bf16_to_f32(f32_to_bf16(x[i]));
    in.x_rounded = rounded.data();
  }
  return in;
}

// o = sum over s of p[s] * v row s (count rows of d floats), each element
// summed over s in order. Chunks of kChunk elements stay in registers while
// s advances, instead of o going to memory and back once per row.
void weighted_sum(const float* p, const float* v, size_t count, size_t d, float* o) {
  constexpr size_t kChunk = 16;
  size_t i0 = 0;
  for (; i0 + kChunk <= d; i0 += kChunk) {
    float acc[kChunk] = {};
    for (size_t s = 0; s < count; ++s)
      for (size_t j = 0; j < kChunk; ++j) acc[j] += p[s] * v[s * d + i0 + j];
    std::copy(acc, acc + kChunk, o + i0);
  }
  for (size_t i = i0; i < d; ++i) {
    float acc = 0.0f;
    for (size_t s = 0; s < count; ++s) acc += p[s] * v[s * d + i];
    o[i] = acc;
  }
}

}  // namespace

void matmul(ThreadPool& pool, const float* x, size_t n, std::span<const MatmulOutput> outputs, ComputeMode mode) {
  const MatmulKernels& kernels = best_kernels();
  if (outputs.empty() || n == 0) return;
  const bool any_bf16 = std::any_of(outputs.begin(), outputs.end(), [](const MatmulOutput& o) {
    return !o.weight.quant && o.weight.dtype == DType::BF16;
  });
  const size_t count = n * static_cast<size_t>(outputs.front().weight.cols);
  MatmulInput in = mode == ComputeMode::fast && any_bf16 ? fast_input(x, count) : MatmulInput{.x = x};
  const bool any_quant_dot = std::any_of(outputs.begin(), outputs.end(), [](const MatmulOutput& o) {
    return o.weight.quant && quant_dot_supports(*o.weight.quant, o.weight.cols);
  });
  if (mode == ComputeMode::fast && any_quant_dot && kernels.dot_quant) {
    // Once per call, into buffers of the calling thread that only grow.
    thread_local std::vector<int8_t> xq;
    thread_local std::vector<float> xd;
    thread_local std::vector<int32_t> xs;
    thread_local std::vector<int8_t> xq4;
    xq.resize(count);
    xd.resize(count / 32);
    xs.resize(count / 32);
    quantize_activations(x, count, xq.data(), xd.data(), xs.data());
    in.xq = xq.data();
    in.xd = xd.data();
    in.xs = xs.data();
    const bool any_4bit = std::any_of(outputs.begin(), outputs.end(), [](const MatmulOutput& o) {
      return o.weight.quant && o.weight.quant->bits == 4;
    });
    if (any_4bit) {
      // Row by row: each x row's groups pair up on their own.
      const size_t k = static_cast<size_t>(outputs.front().weight.cols);
      xq4.resize(count);
      for (size_t i = 0; i < n; ++i) order_activations_4bit(xq.data() + i * k, k, xq4.data() + i * k);
      in.xq4 = xq4.data();
    }
  }
  // All products' output rows form one index space, handed out in chunks of
  // whole tiles to whichever worker is free (about eight per worker: one
  // core stalling on memory longer than the other costs little), so q/k/v
  // (or gate/up) cost one synchronisation. Each output is computed the same
  // way whoever takes its chunk.
  // A fixed array, not a vector: this runs several times per layer per token.
  std::array<int64_t, kMaxMatmulOutputs> starts{};
  if (outputs.size() > starts.size()) throw Error("matmul: too many products in one call");
  int64_t total = 0;
  for (size_t o = 0; o < outputs.size(); ++o) {
    starts[o] = total;
    total += outputs[o].weight.rows;
  }
  const size_t macs = static_cast<size_t>(total) * n * static_cast<size_t>(outputs.front().weight.cols);
  const size_t tile_w = static_cast<size_t>(n == 1 ? kernels.tile_w_single : kernels.tile_w);
  constexpr size_t kChunksPerWorker = 8;
  const size_t per_chunk = static_cast<size_t>(total) / (kChunksPerWorker * static_cast<size_t>(pool.size()));
  const size_t chunk = (per_chunk / tile_w + 1) * tile_w;
  const size_t grain = macs < kMinParallelMacs ? static_cast<size_t>(total) : chunk;
  pool.parallel_for_dynamic(static_cast<size_t>(total), grain,
                    [&](size_t begin, size_t end, int) {
                      for (size_t o = 0; o < outputs.size(); ++o) {
                        const int64_t lo = std::max<int64_t>(static_cast<int64_t>(begin), starts[o]);
                        const int64_t hi = std::min<int64_t>(static_cast<int64_t>(end),
                                                             starts[o] + outputs[o].weight.rows);
                        if (lo < hi) matmul_rows(kernels, in, n, outputs[o], lo - starts[o], hi - starts[o]);
                      }
                    });
}

void rms_norm(const float* x, const float* weight, float weight_offset, size_t rows, size_t dim, float eps,
              float* y) {
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    float sum = 0.0f;
    for (size_t i = 0; i < dim; ++i) sum += xr[i] * xr[i];
    const float scale = 1.0f / std::sqrt(sum / static_cast<float>(dim) + eps);
    // (1 + w) rounded to float before the product, as modeling_gemma.py's
    // `output * (1.0 + self.weight.float())`; 0 + w is exactly w.
    for (size_t i = 0; i < dim; ++i) yr[i] = (weight_offset + weight[i]) * (xr[i] * scale);
  }
}

void layer_norm(const float* x, const float* weight, const float* bias, size_t rows, size_t dim, float eps,
                float* y) {
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    // Two passes (mean, then squared deviations): no cancellation when the
    // mean is large against the spread.
    float sum = 0.0f;
    for (size_t i = 0; i < dim; ++i) sum += xr[i];
    const float mean = sum / static_cast<float>(dim);
    float squares = 0.0f;
    for (size_t i = 0; i < dim; ++i) squares += (xr[i] - mean) * (xr[i] - mean);
    const float rstd = 1.0f / std::sqrt(squares / static_cast<float>(dim) + eps);
    for (size_t i = 0; i < dim; ++i) yr[i] = (xr[i] - mean) * rstd * weight[i] + (bias ? bias[i] : 0.0f);
  }
}

void embedding(const MatrixView& table, std::span<const int32_t> ids, float* out) {
  const size_t dim = static_cast<size_t>(table.cols);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (table.quant)
      table.dequantize(ids[i], ids[i] + 1, out + i * dim);
    else
      to_f32(table.dtype, table.row(ids[i]), out + i * dim, dim);
  }
}

void add_inplace(float* x, const float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] += y[i];
}

void glu(Activation act, float* gate, const float* up, size_t n) {
  switch (act) {
    case Activation::silu:
      for (size_t i = 0; i < n; ++i) gate[i] = silu(gate[i]) * up[i];
      return;
    case Activation::gelu_tanh:
      for (size_t i = 0; i < n; ++i) gate[i] = gelu_tanh(gate[i]) * up[i];
      return;
  }
}

void activate(Activation act, float* x, size_t n) {
  switch (act) {
    case Activation::silu:
      for (size_t i = 0; i < n; ++i) x[i] = silu(x[i]);
      return;
    case Activation::gelu_tanh:
      for (size_t i = 0; i < n; ++i) x[i] = gelu_tanh(x[i]);
      return;
  }
}

void scale(float* x, float factor, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] *= factor;
}

void softcap(float* x, float cap, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = std::tanh(x[i] / cap) * cap;
}

void attention(ThreadPool& pool, const AttentionShape& shape, const float* q, size_t tokens,
               size_t past, size_t start, const float* keys, const float* values, size_t capacity, float* out,
               std::span<float> scratch) {
  const size_t d = static_cast<size_t>(shape.head_dim);
  const size_t heads = static_cast<size_t>(shape.heads);
  const size_t group = heads / static_cast<size_t>(shape.kv_heads);
  const float scale = shape.scale != 0.0f ? shape.scale : 1.0f / std::sqrt(static_cast<float>(d));
  const float cap = shape.softcap;
  const MatmulKernels& kernels = best_kernels();
  const size_t tile_w = static_cast<size_t>(kernels.tile_w_single);
  // One (token, head) pair per work item; each worker keeps its own scores.
  // Short contexts are cheaper on one thread than spread out.
  const size_t grain = (past + tokens) * d < 4096 ? tokens * heads : 1;
  pool.parallel_for(tokens * heads, grain, [&](size_t begin, size_t end, int worker) {
    float* scores = scratch.data() + static_cast<size_t>(worker) * capacity;
    for (size_t item = begin; item < end; ++item) {
      const size_t t = item / heads;
      const size_t h = item % heads;
      const size_t kv = h / group;
      const float* qh = q + (t * heads + h) * d;
      const float* k = keys + kv * capacity * d;
      const float* v = values + kv * capacity * d;
      const size_t visible = past + t + 1;
      // Mistral's window hides positions <= p - window (modeling_mistral.py).
      const size_t window = static_cast<size_t>(shape.window);
      const size_t first = std::max(start, (window > 0 && visible > start + window) ? visible - window : 0);
      // q . k for every visible key through the product tiles: vector
      // lanes in the kernel set's fixed order, not one serial sum per key.
      for (size_t s = first; s < visible; s += tile_w) {
        const int nw = static_cast<int>(std::min(tile_w, visible - s));
        kernels.tile_f32(qh, d, 1, k + s * d, d, nw, d, scores + s, 0);
      }
      float max_score = -INFINITY;
      for (size_t s = first; s < visible; ++s) {
        scores[s] *= scale;
        // Gemma 2 caps before the mask and softmax (modeling_gemma2.py).
        if (cap != 0.0f) scores[s] = std::tanh(scores[s] / cap) * cap;
        max_score = std::max(max_score, scores[s]);
      }
      float sum = 0.0f;
      for (size_t s = first; s < visible; ++s) {
        scores[s] = std::exp(scores[s] - max_score);
        sum += scores[s];
      }
      const float inv_sum = 1.0f / sum;
      for (size_t s = first; s < visible; ++s) scores[s] *= inv_sum;
      // A padding row's query sees nothing (first past visible): zeros.
      const size_t seen = visible > first ? visible - first : 0;
      weighted_sum(scores + first, v + first * d, seen, d, out + (t * heads + h) * d);
    }
  });
}

}  // namespace strata::cpu
