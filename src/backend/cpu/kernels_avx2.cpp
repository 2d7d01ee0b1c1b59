// AVX2 tiles: 8 f32 lanes, up to 2 x rows by 4 weight rows (8 ymm
// accumulators of the 16 registers), scalar tails added after the lane sum.
#include <immintrin.h>

#include "backend/cpu/kernels.h"

namespace strata::cpu {
namespace {

struct LoadF32 {
  static __m256 full(const void* p, size_t at) { return _mm256_loadu_ps(static_cast<const float*>(p) + at); }
  static float one(const void* p, size_t at) { return static_cast<const float*>(p)[at]; }
};

struct LoadBF16 {
  static __m256 full(const void* p, size_t at) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + at));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float one(const void* p, size_t at) { return bf16_to_f32(static_cast<const uint16_t*>(p)[at]); }
};

struct LoadF16 {
  static __m256 full(const void* p, size_t at) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + at)));
  }
  static float one(const void* p, size_t at) { return f16_to_f32(static_cast<const uint16_t*>(p)[at]); }
};

float lane_sum(__m256 v) {
  const __m128 lo = _mm256_castps256_ps128(v);
  const __m128 hi = _mm256_extractf128_ps(v, 1);
  __m128 s = _mm_add_ps(lo, hi);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <typename Load, typename W, int NX, int NW>
void tile(const float* x, size_t x_stride, const void* w_void, size_t w_stride, size_t k, float* out,
          size_t out_stride) {
  const W* w = static_cast<const W*>(w_void);
  __m256 acc[NX][NW];
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) acc[i][j] = _mm256_setzero_ps();
  size_t at = 0;
  for (; at + 8 <= k; at += 8) {
    __m256 xv[NX];
    for (int i = 0; i < NX; ++i) xv[i] = _mm256_loadu_ps(x + i * x_stride + at);
    for (int j = 0; j < NW; ++j) {
      const __m256 wv = Load::full(w + j * w_stride, at);
      for (int i = 0; i < NX; ++i) acc[i][j] = _mm256_fmadd_ps(xv[i], wv, acc[i][j]);
    }
  }
  for (int i = 0; i < NX; ++i) {
    for (int j = 0; j < NW; ++j) {
      float sum = lane_sum(acc[i][j]);
      for (size_t t = at; t < k; ++t) sum += x[i * x_stride + t] * Load::one(w + j * w_stride, t);
      out[i * out_stride + j] = sum;
    }
  }
}

template <typename Load, typename W>
void tile_dispatch(const float* x, size_t x_stride, int nx, const void* w, size_t w_stride, int nw,
                   size_t k, float* out, size_t out_stride) {
  using Fn = void (*)(const float*, size_t, const void*, size_t, size_t, float*, size_t);
  static constexpr Fn table[2][4] = {
      {tile<Load, W, 1, 1>, tile<Load, W, 1, 2>, tile<Load, W, 1, 3>, tile<Load, W, 1, 4>},
      {tile<Load, W, 2, 1>, tile<Load, W, 2, 2>, tile<Load, W, 2, 3>, tile<Load, W, 2, 4>},
  };
  table[nx - 1][nw - 1](x, x_stride, w, w_stride, k, out, out_stride);
}

}  // namespace

const MatmulKernels& avx2_kernels() {
  static const MatmulKernels kernels{"avx2",
                                     2,
                                     4,
                                     4,
                                     tile_dispatch<LoadF32, float>,
                                     tile_dispatch<LoadBF16, uint16_t>,
                                     tile_dispatch<LoadF16, uint16_t>};
  return kernels;
}

}  // namespace strata::cpu
