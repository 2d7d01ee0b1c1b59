#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/cuda_quant.h"
#include "strata/error.h"

namespace strata::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarp = 32;
// Rows of x a matrix-vector kernel takes at once: up to this many, each
// weight is read once for all of them; more go to SGEMM.
constexpr int kMaxVectorRows = 8;
// Largest head_dim the attention kernel takes (one thread per dimension).
constexpr int kMaxHeadDim = kThreads;
// sqrt(2/pi) rounded once to float, as torch's kBeta and the CPU's gelu_tanh.
constexpr float kSqrt2OverPi = static_cast<float>(std::numbers::sqrt2 * std::numbers::inv_sqrtpi);

unsigned blocks_for(size_t n, int threads = kThreads) {
  return static_cast<unsigned>((n + static_cast<size_t>(threads) - 1) / static_cast<size_t>(threads));
}

// Exact widening of stored weights to f32.
__device__ __forceinline__ float widen(float v) { return v; }
struct Bf16 {
  uint16_t bits;
};
struct F16 {
  uint16_t bits;
};
__device__ __forceinline__ float widen(Bf16 v) { return __uint_as_float(static_cast<uint32_t>(v.bits) << 16); }
__device__ __forceinline__ float widen(F16 v) { return __half2float(__ushort_as_half(v.bits)); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Sum (or max) over the block; every thread gets the result.
template <bool kMax>
__device__ float block_reduce(float v, float* shared /* kThreads / kWarp */) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    const float other = __shfl_down_sync(0xffffffffu, v, offset);
    v = kMax ? fmaxf(v, other) : v + other;
  }
  __syncthreads();  // shared may still be read by an earlier reduction
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < blockDim.x / kWarp ? shared[lane] : (kMax ? -INFINITY : 0.0f);
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      const float other = __shfl_down_sync(0xffffffffu, v, offset);
      v = kMax ? fmaxf(v, other) : v + other;
    }
    if (lane == 0) shared[0] = v;
  }
  __syncthreads();
  return shared[0];
}

// out[i, r] = sum_k x[i, k] * w[r, k] (+ bias[r]) for N rows of x: one warp
// per weight row, which it reads once for all N.
template <typename W, int N>
__global__ void matvec_kernel(const W* __restrict__ w, const float* __restrict__ x, const float* __restrict__ bias,
                              float* __restrict__ out, int rows, int cols) {
  const int row = static_cast<int>((blockIdx.x * blockDim.x + threadIdx.x) / kWarp);
  const int lane = threadIdx.x % kWarp;
  if (row >= rows) return;
  const W* wr = w + static_cast<size_t>(row) * static_cast<size_t>(cols);
  float acc[N];
#pragma unroll
  for (int i = 0; i < N; ++i) acc[i] = 0.0f;
  for (int k = lane; k < cols; k += kWarp) {
    const float wk = widen(wr[k]);
#pragma unroll
    for (int i = 0; i < N; ++i) acc[i] += wk * x[static_cast<size_t>(i) * cols + k];
  }
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const float total = warp_sum(acc[i]);
    if (lane == 0) out[static_cast<size_t>(i) * rows + row] = total + (bias ? bias[row] : 0.0f);
  }
}

// Widens the elements of one 16-byte pack of weights (little-endian: the
// low half of each 32-bit word is the earlier element).
__device__ __forceinline__ void widen_pack(const uint4& raw, const float*, float (&out)[4]) {
  out[0] = __uint_as_float(raw.x);
  out[1] = __uint_as_float(raw.y);
  out[2] = __uint_as_float(raw.z);
  out[3] = __uint_as_float(raw.w);
}
__device__ __forceinline__ void widen_pack(const uint4& raw, const Bf16*, float (&out)[8]) {
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    out[2 * j] = __uint_as_float(words[j] << 16);
    out[2 * j + 1] = __uint_as_float(words[j] & 0xffff0000u);
  }
}
__device__ __forceinline__ void widen_pack(const uint4& raw, const F16*, float (&out)[8]) {
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    out[2 * j] = __half2float(__ushort_as_half(static_cast<unsigned short>(words[j] & 0xffffu)));
    out[2 * j + 1] = __half2float(__ushort_as_half(static_cast<unsigned short>(words[j] >> 16)));
  }
}

// matvec_kernel for rows that are whole 16-byte packs, 16-byte aligned, and
// x rows aligned for float4: each lane reads 16 bytes of weights per load
// (a warp 512), which decoding needs to run at the memory's bandwidth.
template <typename W, int N>
__global__ void matvec_packed_kernel(const W* __restrict__ w, const float* __restrict__ x,
                                     const float* __restrict__ bias, float* __restrict__ out, int rows, int cols) {
  constexpr int kPer = 16 / static_cast<int>(sizeof(W));
  const int row = static_cast<int>((blockIdx.x * blockDim.x + threadIdx.x) / kWarp);
  const int lane = threadIdx.x % kWarp;
  if (row >= rows) return;
  const uint4* wr = reinterpret_cast<const uint4*>(w + static_cast<size_t>(row) * static_cast<size_t>(cols));
  const int packs = cols / kPer;
  float acc[N];
#pragma unroll
  for (int i = 0; i < N; ++i) acc[i] = 0.0f;
  for (int p = lane; p < packs; p += kWarp) {
    float wk[kPer];
    widen_pack(wr[p], static_cast<const W*>(nullptr), wk);
#pragma unroll
    for (int i = 0; i < N; ++i) {
      const float4* xv = reinterpret_cast<const float4*>(x + static_cast<size_t>(i) * cols) + p * (kPer / 4);
#pragma unroll
      for (int q = 0; q < kPer / 4; ++q) {
        const float4 xx = xv[q];
        acc[i] += wk[4 * q] * xx.x + wk[4 * q + 1] * xx.y + wk[4 * q + 2] * xx.z + wk[4 * q + 3] * xx.w;
      }
    }
  }
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const float total = warp_sum(acc[i]);
    if (lane == 0) out[static_cast<size_t>(i) * rows + row] = total + (bias ? bias[row] : 0.0f);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <typename W, int N>
void launch_matvec(const void* w, const float* x, const float* bias, float* out, int rows, int cols,
                   cudaStream_t stream) {
  const unsigned blocks = blocks_for(static_cast<size_t>(rows) * kWarp);
  const bool packed = (static_cast<size_t>(cols) * sizeof(W)) % 16 == 0 && aligned16(w) && aligned16(x);
  if (packed)
    matvec_packed_kernel<W, N><<<blocks, kThreads, 0, stream>>>(static_cast<const W*>(w), x, bias, out, rows, cols);
  else
    matvec_kernel<W, N><<<blocks, kThreads, 0, stream>>>(static_cast<const W*>(w), x, bias, out, rows, cols);
}

template <typename W>
void matvec(int n, const void* w, const float* x, const float* bias, float* out, int rows, int cols,
            cudaStream_t stream) {
  switch (n) {
    case 1: return launch_matvec<W, 1>(w, x, bias, out, rows, cols, stream);
    case 2: return launch_matvec<W, 2>(w, x, bias, out, rows, cols, stream);
    case 3: return launch_matvec<W, 3>(w, x, bias, out, rows, cols, stream);
    case 4: return launch_matvec<W, 4>(w, x, bias, out, rows, cols, stream);
    case 5: return launch_matvec<W, 5>(w, x, bias, out, rows, cols, stream);
    case 6: return launch_matvec<W, 6>(w, x, bias, out, rows, cols, stream);
    case 7: return launch_matvec<W, 7>(w, x, bias, out, rows, cols, stream);
    default: return launch_matvec<W, 8>(w, x, bias, out, rows, cols, stream);
  }
}

template <typename W>
__global__ void widen_kernel(const W* __restrict__ src, float* __restrict__ dst, size_t n) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] = widen(src[i]);
}

__global__ void add_bias_kernel(float* out, const float* bias, size_t n, int rows) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] += bias[i % static_cast<size_t>(rows)];
}

// One block per row. weight_offset is 1 for Gemma's (1 + weight), else 0.
// x and y may be the same rows (Qwen3 normalizes q/k heads in place): each
// thread reads its elements before it writes them, and x is not __restrict__.
__global__ void rms_norm_kernel(const float* x, const float* __restrict__ weight, float weight_offset, int dim,
                                float eps, float* y) {
  __shared__ float shared[kThreads / kWarp];
  const float* xr = x + static_cast<size_t>(blockIdx.x) * dim;
  float* yr = y + static_cast<size_t>(blockIdx.x) * dim;
  float sum = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) sum += xr[i] * xr[i];
  sum = block_reduce<false>(sum, shared);
  const float scale = 1.0f / sqrtf(sum / static_cast<float>(dim) + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = (weight_offset + weight[i]) * (xr[i] * scale);
}

// One block per row: the mean, then the biased variance from the squared
// deviations (two passes, as on the CPU), then torch's nn.LayerNorm.
__global__ void layer_norm_kernel(const float* __restrict__ x, const float* __restrict__ weight,
                                  const float* __restrict__ bias, int dim, float eps, float* __restrict__ y) {
  __shared__ float shared[kThreads / kWarp];
  const float* xr = x + static_cast<size_t>(blockIdx.x) * dim;
  float* yr = y + static_cast<size_t>(blockIdx.x) * dim;
  float sum = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) sum += xr[i];
  const float mean = block_reduce<false>(sum, shared) / static_cast<float>(dim);
  float squares = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) squares += (xr[i] - mean) * (xr[i] - mean);
  // block_reduce's leading barrier keeps this from overwriting `shared`
  // before every thread has read the mean out of it.
  const float rstd = 1.0f / sqrtf(block_reduce<false>(squares, shared) / static_cast<float>(dim) + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x)
    yr[i] = (xr[i] - mean) * rstd * weight[i] + (bias ? bias[i] : 0.0f);
}

template <typename W>
__global__ void embedding_kernel(const W* __restrict__ table, const int32_t* __restrict__ ids, int dim,
                                 float* __restrict__ out) {
  const W* row = table + static_cast<size_t>(ids[blockIdx.x]) * dim;
  float* o = out + static_cast<size_t>(blockIdx.x) * dim;
  for (int c = threadIdx.x; c < dim; c += blockDim.x) o[c] = widen(row[c]);
}

__global__ void add_kernel(float* x, const float* y, size_t n) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i < n) x[i] += y[i];
}

// The activations of backend/ops.h in float32, in the CPU's order of operations.
__device__ __forceinline__ float activation(Activation act, float v) {
  if (act == Activation::gelu_tanh) {
    const float cube = v * v * v;
    return 0.5f * v * (1.0f + tanhf(kSqrt2OverPi * (v + 0.044715f * cube)));
  }
  return v / (1.0f + expf(-v));  // silu
}

__global__ void glu_kernel(Activation act, float* gate, const float* up, size_t n) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i < n) gate[i] = activation(act, gate[i]) * up[i];
}

__global__ void activate_kernel(Activation act, float* x, size_t n) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i < n) x[i] = activation(act, x[i]);
}

__global__ void scale_kernel(float* x, float factor, size_t n) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i < n) x[i] *= factor;
}

// One block per gathered row.
__global__ void gather_rows_kernel(const float* __restrict__ src, size_t cols, const int32_t* __restrict__ rows,
                                   float* __restrict__ dst) {
  const float* from = src + static_cast<size_t>(rows[blockIdx.x]) * cols;
  float* to = dst + static_cast<size_t>(blockIdx.x) * cols;
  for (size_t c = threadIdx.x; c < cols; c += blockDim.x) to[c] = from[c];
}

// One block per source row; the rows are distinct, so no two blocks write
// the same output. The product is rounded before the add (no FMA), as on the CPU.
__global__ void add_scaled_rows_kernel(float* dst, const float* __restrict__ src, size_t cols,
                                       const int32_t* __restrict__ rows, const float* __restrict__ scales) {
  float* to = dst + static_cast<size_t>(rows[blockIdx.x]) * cols;
  const float* from = src + static_cast<size_t>(blockIdx.x) * cols;
  const float s = scales[blockIdx.x];
  for (size_t c = threadIdx.x; c < cols; c += blockDim.x) to[c] = __fadd_rn(to[c], __fmul_rn(from[c], s));
}

__global__ void softcap_kernel(float* x, float cap, size_t n) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i < n) x[i] = tanhf(x[i] / cap) * cap;
}

// One thread per (token, head, frequency): x * cos + rotate_half(x) * sin,
// cos and sin times attention_scaling (exact when it is 1: v * 1 == v).
__global__ void rope_kernel(float* x, const float* __restrict__ inv_freq, const int64_t* __restrict__ row_starts,
                            int heads, int head_dim, float attention_scaling, int64_t tokens, int64_t past,
                            size_t n) {
  const size_t item = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (item >= n) return;
  const int half = head_dim / 2;
  const int i = static_cast<int>(item % static_cast<size_t>(half));
  const size_t head = item / static_cast<size_t>(half);  // token * heads + h
  const int64_t token = static_cast<int64_t>(head / static_cast<size_t>(heads));
  const int64_t r = token / tokens, t = token % tokens;
  const int64_t pos = max(past + t - row_starts[r], static_cast<int64_t>(0));
  const float angle = inv_freq[i] * static_cast<float>(pos);
  const float c = cosf(angle) * attention_scaling, s = sinf(angle) * attention_scaling;
  float* h = x + head * static_cast<size_t>(head_dim);
  const float x1 = h[i], x2 = h[i + half];
  h[i] = x1 * c - x2 * s;
  h[i + half] = x2 * c + x1 * s;
}

__global__ void store_kv_kernel(const float* __restrict__ k, const float* __restrict__ v, int kv_heads,
                                int head_dim, size_t capacity, size_t first_slot, float* keys, float* values,
                                size_t n) {
  const size_t item = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (item >= n) return;
  const size_t d = static_cast<size_t>(head_dim);
  const size_t i = item % d;
  const size_t h = (item / d) % static_cast<size_t>(kv_heads);
  const size_t t = item / (d * static_cast<size_t>(kv_heads));
  const size_t dst = (h * capacity + first_slot + t) * d + i;
  keys[dst] = k[item];
  values[dst] = v[item];
}

// One block per (query token, head), one thread per key of a tile of
// kThreads keys; an online softmax carries the running maximum and sum over
// the tiles, and thread i < head_dim accumulates output dimension i.
// Scores are dot * scale, then soft-capped when softcap is not 0 (Gemma 2).
__global__ void attention_kernel(const float* __restrict__ q, const float* __restrict__ keys,
                                 const float* __restrict__ values, float* __restrict__ out, int heads, int group,
                                 int head_dim, size_t capacity, size_t past, size_t start, size_t window,
                                 float scale, float softcap) {
  __shared__ float shared[kThreads / kWarp];
  __shared__ float q_shared[kMaxHeadDim];
  __shared__ float p_shared[kThreads];
  const int t = blockIdx.x / heads, h = blockIdx.x % heads, kv = h / group;
  const size_t d = static_cast<size_t>(head_dim);
  const float* qh = q + (static_cast<size_t>(t) * heads + h) * d;
  const float* k = keys + static_cast<size_t>(kv) * capacity * d;
  const float* v = values + static_cast<size_t>(kv) * capacity * d;
  for (int i = threadIdx.x; i < head_dim; i += blockDim.x) q_shared[i] = qh[i];
  __syncthreads();
  const size_t visible = past + static_cast<size_t>(t) + 1;
  const size_t first = max(start, (window > 0 && visible > start + window) ? visible - window : size_t{0});
  float running_max = -INFINITY, running_sum = 0.0f, acc = 0.0f;
  for (size_t tile = first; tile < visible; tile += kThreads) {
    const size_t j = tile + threadIdx.x;
    float score = -INFINITY;
    if (j < visible) {
      float dot = 0.0f;
      for (size_t i = 0; i < d; ++i) dot += q_shared[i] * k[j * d + i];
      score = dot * scale;
      if (softcap != 0.0f) score = tanhf(score / softcap) * softcap;
    }
    const float new_max = fmaxf(running_max, block_reduce<true>(score, shared));
    const float p = j < visible ? expf(score - new_max) : 0.0f;
    p_shared[threadIdx.x] = p;
    const float tile_sum = block_reduce<false>(p, shared);  // its barriers also publish p_shared
    const float correction = running_max == -INFINITY ? 0.0f : expf(running_max - new_max);
    running_sum = running_sum * correction + tile_sum;
    running_max = new_max;
    if (threadIdx.x < head_dim) {
      const size_t count = min(static_cast<size_t>(kThreads), visible - tile);
      float sum = 0.0f;
      for (size_t jj = 0; jj < count; ++jj) sum += p_shared[jj] * v[(tile + jj) * d + threadIdx.x];
      acc = acc * correction + sum;
    }
    __syncthreads();  // p_shared is rewritten by the next tile
  }
  // A left-padded row's padding queries see no key: zeros, as on the CPU.
  if (threadIdx.x < head_dim)
    out[(static_cast<size_t>(t) * heads + h) * d + threadIdx.x] = running_sum > 0.0f ? acc / running_sum : 0.0f;
}

}  // namespace

CudaOps::CudaOps(int device_index, cudaStream_t stream) : index_(device_index), stream_(stream) {
  make_current();
  STRATA_CUBLAS_CHECK(cublasCreate(&blas_));
  try {
    STRATA_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
    // Float32 products stay float32: no TF32 tensor-op rounding.
    STRATA_CUBLAS_CHECK(cublasSetMathMode(blas_, CUBLAS_PEDANTIC_MATH));
    STRATA_CUDA_CHECK(cudaMalloc(&widened_, kWidenFloats * sizeof(float)));
  } catch (...) {
    cublasDestroy(blas_);  // the destructor does not run for a half-built object
    throw;
  }
}

CudaOps::~CudaOps() {
  cudaSetDevice(index_);
  cudaStreamSynchronize(stream_);
  for (const auto& [rope, table] : inv_freq_) cudaFree(table);
  cudaFree(starts_.data);
  cudaFree(ids_.data);
  cudaFree(rows_.data);
  cudaFree(scales_.data);
  cudaFree(widened_);
  if (blas_) cublasDestroy(blas_);
}

void CudaOps::make_current() const { STRATA_CUDA_CHECK(cudaSetDevice(index_)); }

bool CudaOps::supports(OpKind op, DType weights) const {
  // Matrix weights are widened by widen() (F32, BF16, F16); every other op
  // takes f32 activations only and ignores the dtype.
  if (op == OpKind::matmul || op == OpKind::embedding)
    return weights == DType::F32 || weights == DType::BF16 || weights == DType::F16;
  return true;
}

bool CudaOps::supports(OpKind op, const QuantLayout& layout) const {
  // Quantized rows are dequantized exactly into f32 (cuda_quant.h), then
  // multiplied as f32 weights are.
  return (op == OpKind::matmul || op == OpKind::embedding) && quant_kernels_support(layout);
}

void CudaOps::matmul(const float* x, size_t n, std::span<const MatmulOutput> outputs) {
  make_current();
  for (const MatmulOutput& job : outputs) matmul_one(x, n, job);
}

void CudaOps::matmul_one(const float* x, size_t n, const MatmulOutput& job) {
  const MatrixView& w = job.weight;
  const int rows = static_cast<int>(w.rows), cols = static_cast<int>(w.cols);
  if (n == 0 || rows == 0) return;
  if (!w.quant && n <= static_cast<size_t>(kMaxVectorRows)) {
    const int vectors = static_cast<int>(n);
    switch (w.dtype) {
      case DType::F32: matvec<float>(vectors, w.data, x, job.bias, job.out, rows, cols, stream_); break;
      case DType::BF16: matvec<Bf16>(vectors, w.data, x, job.bias, job.out, rows, cols, stream_); break;
      case DType::F16: matvec<F16>(vectors, w.data, x, job.bias, job.out, rows, cols, stream_); break;
      default: throw Error("cuda matmul: unsupported weight dtype");
    }
    check_launch();
    return;
  }
  // Column-major view: out^T [rows, n] = W [rows, cols] x^T [cols, n], with
  // W's row-major storage read as the transpose of a [cols, rows] matrix.
  const float one = 1.0f, zero = 0.0f;
  const int m = static_cast<int>(n);
  if (!w.quant && w.dtype == DType::F32) {
    STRATA_CUBLAS_CHECK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, rows, m, cols, &one,
                                    static_cast<const float*>(w.data), cols, x, cols, &zero, job.out, rows));
  } else {
    if (static_cast<size_t>(cols) > kWidenFloats)
      throw Error("cuda matmul: rows of " + std::to_string(cols) + " elements exceed the widening scratch");
    // Widen (or dequantize) a slice of rows at a time into the scratch, then
    // multiply it.
    const int slice = std::max(1, static_cast<int>(kWidenFloats / static_cast<size_t>(cols)));
    for (int r0 = 0; r0 < rows; r0 += slice) {
      const int count = std::min(slice, rows - r0);
      const size_t elements = static_cast<size_t>(count) * static_cast<size_t>(cols);
      const size_t offset = static_cast<size_t>(r0) * static_cast<size_t>(cols);
      if (w.quant)
        dequantize_rows(w, r0, r0 + count, widened_, stream_);
      else if (w.dtype == DType::BF16)
        widen_kernel<<<blocks_for(elements), kThreads, 0, stream_>>>(static_cast<const Bf16*>(w.data) + offset,
                                                                     widened_, elements);
      else
        widen_kernel<<<blocks_for(elements), kThreads, 0, stream_>>>(static_cast<const F16*>(w.data) + offset,
                                                                     widened_, elements);
      check_launch();
      STRATA_CUBLAS_CHECK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, count, m, cols, &one, widened_, cols, x,
                                      cols, &zero, job.out + r0, rows));
    }
  }
  if (job.bias) {
    const size_t total = n * static_cast<size_t>(rows);
    add_bias_kernel<<<blocks_for(total), kThreads, 0, stream_>>>(job.out, job.bias, total, rows);
    check_launch();
  }
}

void CudaOps::rms_norm(const float* x, const float* weight, float weight_offset, size_t rows, size_t dim, float eps,
                       float* y) {
  if (rows == 0) return;
  make_current();
  rms_norm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream_>>>(x, weight, weight_offset,
                                                                         static_cast<int>(dim), eps, y);
  check_launch();
}

void CudaOps::layer_norm(const float* x, const float* weight, const float* bias, size_t rows, size_t dim, float eps,
                         float* y) {
  if (rows == 0) return;
  make_current();
  layer_norm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream_>>>(x, weight, bias, static_cast<int>(dim),
                                                                           eps, y);
  check_launch();
}

template <typename T>
const T* CudaOps::mirror(std::span<const T> values, Mirrored<T>& array) {
  if (std::equal(values.begin(), values.end(), array.values.begin(), array.values.end())) return array.data;
  if (values.size() > array.capacity) {
    STRATA_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the old buffer may still be read
    cudaFree(array.data);
    array.data = nullptr;
    array.values.clear();
    array.capacity = 0;
    const size_t capacity = std::max<size_t>(values.size(), 256);
    STRATA_CUDA_CHECK(cudaMalloc(&array.data, capacity * sizeof(T)));
    array.capacity = capacity;
  }
  // From pageable memory: returns once the values are staged, so the caller
  // may reuse them; ordered on the stream after the kernels that read the
  // old values and before those that read the new.
  STRATA_CUDA_CHECK(cudaMemcpyAsync(array.data, values.data(), values.size() * sizeof(T), cudaMemcpyHostToDevice,
                                    stream_));
  array.values.assign(values.begin(), values.end());
  return array.data;
}

void CudaOps::embedding(const MatrixView& table, std::span<const int32_t> ids, float* out) {
  if (ids.empty()) return;
  make_current();
  const int32_t* device_ids = mirror(ids, ids_);
  if (table.quant) {
    gather_dequantized_rows(table, device_ids, ids.size(), out, stream_);
    return;
  }
  const unsigned blocks = static_cast<unsigned>(ids.size());
  const int dim = static_cast<int>(table.cols);
  switch (table.dtype) {
    case DType::F32:
      embedding_kernel<<<blocks, kThreads, 0, stream_>>>(static_cast<const float*>(table.data), device_ids, dim, out);
      break;
    case DType::BF16:
      embedding_kernel<<<blocks, kThreads, 0, stream_>>>(static_cast<const Bf16*>(table.data), device_ids, dim, out);
      break;
    case DType::F16:
      embedding_kernel<<<blocks, kThreads, 0, stream_>>>(static_cast<const F16*>(table.data), device_ids, dim, out);
      break;
    default: throw Error("cuda embedding: unsupported table dtype");
  }
  check_launch();
}

void CudaOps::add_inplace(float* x, const float* y, size_t n) {
  if (n == 0) return;
  make_current();
  add_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(x, y, n);
  check_launch();
}

void CudaOps::glu(Activation act, float* gate, const float* up, size_t n) {
  if (n == 0) return;
  make_current();
  glu_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(act, gate, up, n);
  check_launch();
}

void CudaOps::activate(Activation act, float* x, size_t n) {
  if (n == 0) return;
  make_current();
  activate_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(act, x, n);
  check_launch();
}

void CudaOps::scale(float* x, float factor, size_t n) {
  if (n == 0) return;
  make_current();
  scale_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(x, factor, n);
  check_launch();
}

void CudaOps::softcap(float* x, float cap, size_t n) {
  if (n == 0) return;
  make_current();
  softcap_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(x, cap, n);
  check_launch();
}

const float* CudaOps::inv_freq_on_device(const Rope& rope) {
  float*& table = inv_freq_[&rope];
  if (!table) {
    const auto& host = rope.inv_freq();
    STRATA_CUDA_CHECK(cudaMalloc(&table, host.size() * sizeof(float)));
    // On the device's stream (not the legacy default stream, which a
    // non-blocking stream does not wait for), before the kernel that reads it.
    // The host table lives as long as the Rope.
    STRATA_CUDA_CHECK(cudaMemcpyAsync(table, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice,
                                      stream_));
  }
  return table;
}

void CudaOps::rope(const Rope& rope, float* x, int heads, int64_t rows, int64_t tokens, int64_t past,
                   std::span<const int64_t> row_starts) {
  const size_t n = static_cast<size_t>(rows * tokens) * static_cast<size_t>(heads) *
                   static_cast<size_t>(rope.head_dim() / 2);
  if (n == 0) return;
  make_current();
  const float* inv_freq = inv_freq_on_device(rope);
  const int64_t* starts = mirror(row_starts.first(static_cast<size_t>(rows)), starts_);
  rope_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(x, inv_freq, starts, heads, rope.head_dim(),
                                                       rope.attention_scaling(), tokens, past, n);
  check_launch();
}

void CudaOps::store_kv(const float* k, const float* v, size_t tokens, int kv_heads, int head_dim, size_t capacity,
                       size_t first_slot, float* keys, float* values) {
  const size_t n = tokens * static_cast<size_t>(kv_heads) * static_cast<size_t>(head_dim);
  if (n == 0) return;
  make_current();
  store_kv_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(k, v, kv_heads, head_dim, capacity, first_slot, keys,
                                                           values, n);
  check_launch();
}

void CudaOps::attention(const AttentionShape& shape, const float* q, size_t tokens, size_t past, size_t start,
                        const float* keys, const float* values, size_t capacity, float* out, std::span<float>) {
  if (shape.head_dim > kMaxHeadDim)
    throw Error("cuda attention: head_dim " + std::to_string(shape.head_dim) + " is above the kernel's " +
                std::to_string(kMaxHeadDim));
  if (tokens == 0) return;
  make_current();
  const unsigned blocks = static_cast<unsigned>(tokens * static_cast<size_t>(shape.heads));
  // The CPU's default: 1/sqrt(head_dim) when the caller leaves scale at 0.
  const float score_scale = shape.scale != 0.0f ? shape.scale : 1.0f / sqrtf(static_cast<float>(shape.head_dim));
  attention_kernel<<<blocks, kThreads, 0, stream_>>>(q, keys, values, out, shape.heads, shape.heads / shape.kv_heads,
                                                     shape.head_dim, capacity, past, start,
                                                     static_cast<size_t>(shape.window), score_scale, shape.softcap);
  check_launch();
}

void CudaOps::copy(float* dst, const float* src, size_t n) {
  if (n == 0) return;
  make_current();
  STRATA_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
}

void CudaOps::zero(float* x, size_t n) {
  if (n == 0) return;
  make_current();
  STRATA_CUDA_CHECK(cudaMemsetAsync(x, 0, n * sizeof(float), stream_));  // all-zero bytes are +0.0f
}

void CudaOps::gather_rows(const float* src, size_t cols, std::span<const int32_t> rows, float* dst) {
  if (rows.empty() || cols == 0) return;
  make_current();
  const int32_t* device_rows = mirror(rows, rows_);
  gather_rows_kernel<<<static_cast<unsigned>(rows.size()), kThreads, 0, stream_>>>(src, cols, device_rows, dst);
  check_launch();
}

void CudaOps::add_scaled_rows(float* dst, const float* src, size_t cols, std::span<const int32_t> rows,
                              std::span<const float> scales) {
  if (rows.empty() || cols == 0) return;
  make_current();
  const int32_t* device_rows = mirror(rows, rows_);
  const float* device_scales = mirror(scales, scales_);
  add_scaled_rows_kernel<<<static_cast<unsigned>(rows.size()), kThreads, 0, stream_>>>(dst, src, cols, device_rows,
                                                                                      device_scales);
  check_launch();
}

void CudaOps::to_host(float* host_dst, const float* src, size_t n) {
  if (n == 0) return;
  make_current();
  STRATA_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  STRATA_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

// From pageable memory, cudaMemcpyAsync returns once the source has been
// staged, so the caller may reuse it; the copy stays in stream order.
void CudaOps::from_host(float* dst, const float* host_src, size_t n) {
  if (n == 0) return;
  make_current();
  STRATA_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, n * sizeof(float), cudaMemcpyHostToDevice, stream_));
}

}  // namespace strata::cuda
