// AVX-512 tiles: 16 f32 lanes, up to 4 x rows by 4 weight rows (16 zmm
// accumulators), tails by masked loads so no element is read out of bounds.
// GCC 12's avx512fintrin.h builds some intrinsics from _mm512_undefined_*(),
// which its own -Wuninitialized then flags inside the header: a known false
// positive, silenced for this file only.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "backend/cpu/kernels.h"

namespace strata::cpu {
namespace {

// Loads 16 weights (or the first `count` of them, zero-filling the rest)
// and widens them to f32.
struct LoadF32 {
  static __m512 full(const void* p, size_t at) { return _mm512_loadu_ps(static_cast<const float*>(p) + at); }
  static __m512 part(const void* p, size_t at, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(p) + at);
  }
};

struct LoadBF16 {
  static __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static __m512 full(const void* p, size_t at) {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(p) + at)));
  }
  static __m512 part(const void* p, size_t at, __mmask16 m) {
    return widen(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + at));
  }
};

struct LoadF16 {
  static __m512 full(const void* p, size_t at) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(p) + at)));
  }
  static __m512 part(const void* p, size_t at, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + at));
  }
};

template <typename Load, typename W, int NX, int NW>
void tile(const float* x, size_t x_stride, const void* w_void, size_t w_stride, size_t k, float* out,
          size_t out_stride) {
  const W* w = static_cast<const W*>(w_void);
  __m512 acc[NX][NW];
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) acc[i][j] = _mm512_setzero_ps();

  size_t at = 0;
  for (; at + 16 <= k; at += 16) {
    __m512 xv[NX];
    for (int i = 0; i < NX; ++i) xv[i] = _mm512_loadu_ps(x + i * x_stride + at);
    for (int j = 0; j < NW; ++j) {
      const __m512 wv = Load::full(w + j * w_stride, at);
      for (int i = 0; i < NX; ++i) acc[i][j] = _mm512_fmadd_ps(xv[i], wv, acc[i][j]);
    }
  }
  if (at < k) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (k - at)) - 1u);
    __m512 xv[NX];
    for (int i = 0; i < NX; ++i) xv[i] = _mm512_maskz_loadu_ps(mask, x + i * x_stride + at);
    for (int j = 0; j < NW; ++j) {
      const __m512 wv = Load::part(w + j * w_stride, at, mask);
      for (int i = 0; i < NX; ++i) acc[i][j] = _mm512_fmadd_ps(xv[i], wv, acc[i][j]);
    }
  }
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) out[i * out_stride + j] = _mm512_reduce_add_ps(acc[i][j]);
}

template <typename Load, typename W>
void tile_dispatch(const float* x, size_t x_stride, int nx, const void* w, size_t w_stride, int nw,
                   size_t k, float* out, size_t out_stride) {
  using Fn = void (*)(const float*, size_t, const void*, size_t, size_t, float*, size_t);
  // A single x row (decoding) streams up to 8 weight rows at once: more
  // independent loads in flight, same per-element reduction order. No
  // software prefetch of the next tile's rows: with it, decoding the
  // TinyLlama-shaped model took 91-96 ms (bf16) and 182-186 ms (f32) per
  // token against 88 and 143-149 ms without (2 threads, Zen 4, interleaved).
  static constexpr Fn single[8] = {tile<Load, W, 1, 1>, tile<Load, W, 1, 2>, tile<Load, W, 1, 3>,
                                   tile<Load, W, 1, 4>, tile<Load, W, 1, 5>, tile<Load, W, 1, 6>,
                                   tile<Load, W, 1, 7>, tile<Load, W, 1, 8>};
  if (nx == 1) return single[nw - 1](x, x_stride, w, w_stride, k, out, out_stride);
  static constexpr Fn table[4][4] = {
      {tile<Load, W, 1, 1>, tile<Load, W, 1, 2>, tile<Load, W, 1, 3>, tile<Load, W, 1, 4>},
      {tile<Load, W, 2, 1>, tile<Load, W, 2, 2>, tile<Load, W, 2, 3>, tile<Load, W, 2, 4>},
      {tile<Load, W, 3, 1>, tile<Load, W, 3, 2>, tile<Load, W, 3, 3>, tile<Load, W, 3, 4>},
      {tile<Load, W, 4, 1>, tile<Load, W, 4, 2>, tile<Load, W, 4, 3>, tile<Load, W, 4, 4>},
  };
  table[nx - 1][nw - 1](x, x_stride, w, w_stride, k, out, out_stride);
}

}  // namespace

const MatmulKernels& avx512_kernels() {
  static const MatmulKernels kernels{"avx512",
                                     4,
                                     4,
                                     8,
                                     tile_dispatch<LoadF32, float>,
                                     tile_dispatch<LoadBF16, uint16_t>,
                                     tile_dispatch<LoadF16, uint16_t>,
                                     nullptr,
                                     nullptr,
                                     nullptr,
                                     nullptr,
                                     avx2_quant_dot()};  // AVX-512 CPUs run AVX2
  return kernels;
}

}  // namespace strata::cpu
