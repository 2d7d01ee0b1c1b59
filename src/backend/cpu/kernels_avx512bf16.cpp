// Fast-mode tiles for BF16 weights on CPUs with AVX512-BF16: the activations
// come already rounded to bf16, and vdpbf16ps multiplies 32 bf16 pairs per
// instruction into 16 f32 accumulators (each lane adds the two products of
// its pair to its sum). Weights are read at half the width of a widening
// load, and no widening instruction is spent on them. Up to 4 x rows by 4
// weight rows per tile, 8 weight rows when decoding; tails by masked loads.
// Each output element is reduced in the same order whatever the tile shape.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "backend/cpu/kernels.h"

namespace strata::cpu {
namespace {

__m512bh load_pairs(const uint16_t* p) { return reinterpret_cast<__m512bh>(_mm512_loadu_si512(p)); }
__m512bh load_pairs(const uint16_t* p, __mmask32 m) {
  return reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(m, p));
}

template <int NX, int NW>
void tile(const uint16_t* x, size_t x_stride, const uint16_t* w, size_t w_stride, size_t k, float* out,
          size_t out_stride) {
  __m512 acc[NX][NW];
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) acc[i][j] = _mm512_setzero_ps();
  size_t at = 0;
  for (; at + 32 <= k; at += 32) {
    __m512bh xv[NX];
    for (int i = 0; i < NX; ++i) xv[i] = load_pairs(x + i * x_stride + at);
    for (int j = 0; j < NW; ++j) {
      const __m512bh wv = load_pairs(w + j * w_stride + at);
      for (int i = 0; i < NX; ++i) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv[i], wv);
    }
  }
  if (at < k) {
    const __mmask32 mask = static_cast<__mmask32>((uint64_t{1} << (k - at)) - 1u);
    __m512bh xv[NX];
    for (int i = 0; i < NX; ++i) xv[i] = load_pairs(x + i * x_stride + at, mask);
    for (int j = 0; j < NW; ++j) {
      const __m512bh wv = load_pairs(w + j * w_stride + at, mask);
      for (int i = 0; i < NX; ++i) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv[i], wv);
    }
  }
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) out[i * out_stride + j] = _mm512_reduce_add_ps(acc[i][j]);
}

void tile_dispatch(const uint16_t* x, size_t x_stride, int nx, const uint16_t* w, size_t w_stride, int nw, size_t k,
                   float* out, size_t out_stride) {
  using Fn = void (*)(const uint16_t*, size_t, const uint16_t*, size_t, size_t, float*, size_t);
  static constexpr Fn single[8] = {tile<1, 1>, tile<1, 2>, tile<1, 3>, tile<1, 4>,
                                   tile<1, 5>, tile<1, 6>, tile<1, 7>, tile<1, 8>};
  if (nx == 1) return single[nw - 1](x, x_stride, w, w_stride, k, out, out_stride);
  static constexpr Fn table[4][4] = {
      {tile<1, 1>, tile<1, 2>, tile<1, 3>, tile<1, 4>},
      {tile<2, 1>, tile<2, 2>, tile<2, 3>, tile<2, 4>},
      {tile<3, 1>, tile<3, 2>, tile<3, 3>, tile<3, 4>},
      {tile<4, 1>, tile<4, 2>, tile<4, 3>, tile<4, 4>},
  };
  table[nx - 1][nw - 1](x, x_stride, w, w_stride, k, out, out_stride);
}

// vcvtneps2bf16: round to nearest even, 16 at a time.
void round_to_bf16(const float* x, uint16_t* out, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i))));
  if (i < n) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m256bh r = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, x + i));
    _mm256_mask_storeu_epi16(out + i, mask, reinterpret_cast<__m256i>(r));
  }
}

}  // namespace

FastBf16Kernels avx512_bf16_kernels() { return {tile_dispatch, round_to_bf16}; }

}  // namespace strata::cpu
