// AVX2 tiles: 8 f32 lanes, up to 2 x rows by 4 weight rows (8 ymm
// accumulators of the 16 registers), scalar tails added after the lane sum;
// and a blocked product for prompts that sums each output the same way.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

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

// acc[i][j] += lanes of x row i times weight row j over k in [begin, end),
// eight elements at a time (end - begin a multiple of 8).
template <typename Load, typename W, int NX, int NW>
void accumulate(const float* x, size_t x_stride, const W* w, size_t w_stride, size_t begin, size_t end,
                __m256 (&acc)[NX][NW]) {
  for (size_t at = begin; at < end; at += 8) {
    __m256 xv[NX];
    for (int i = 0; i < NX; ++i) xv[i] = _mm256_loadu_ps(x + i * x_stride + at);
    for (int j = 0; j < NW; ++j) {
      const __m256 wv = Load::full(w + j * w_stride, at);
      for (int i = 0; i < NX; ++i) acc[i][j] = _mm256_fmadd_ps(xv[i], wv, acc[i][j]);
    }
  }
}

// One output: the lane sum, then the elements from `at` to k one by one.
template <typename Load, typename W>
float finish_one(const float* x, const W* w, size_t at, size_t k, __m256 acc) {
  float sum = lane_sum(acc);
  for (size_t t = at; t < k; ++t) sum += x[t] * Load::one(w, t);
  return sum;
}

template <typename Load, typename W, int NX, int NW>
void finish(const float* x, size_t x_stride, const W* w, size_t w_stride, size_t at, size_t k,
            const __m256 (&acc)[NX][NW], float* out, size_t out_stride) {
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j)
      out[i * out_stride + j] = finish_one<Load, W>(x + i * x_stride, w + j * w_stride, at, k, acc[i][j]);
}

template <typename Load, typename W, int NX, int NW>
void tile(const float* x, size_t x_stride, const void* w_void, size_t w_stride, size_t k, float* out,
          size_t out_stride) {
  const W* w = static_cast<const W*>(w_void);
  __m256 acc[NX][NW];
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) acc[i][j] = _mm256_setzero_ps();
  const size_t whole = k / 8 * 8;
  accumulate<Load, W, NX, NW>(x, x_stride, w, w_stride, 0, whole, acc);
  finish<Load, W, NX, NW>(x, x_stride, w, w_stride, whole, k, acc, out, out_stride);
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

// The blocked product for many x rows (a prompt). A panel of kGemmW weight
// rows, kBlockK columns of it at a time, sits in L1 as f32 (BF16 and F16
// widened once per block instead of once per x row) while a block of kBlockX
// x rows passes over it, kGemmX rows per step; between column blocks each
// (x row, weight row) keeps its eight lane sums in `partial`, so every output
// is summed exactly as tile() sums it.
// 3 x 4 accumulators + 3 x rows + 1 weight vector: all 16 registers, 7
// loads per 12 multiply-adds (measured here on Zen 3: 85% of the FMA peak
// in L1, against 75% for 2 x 6, whose weights the compiler loads twice).
constexpr int kGemmX = 3;
constexpr int kGemmW = 4;
constexpr size_t kBlockK = 512;  // a multiple of 8; an 8 KiB panel
constexpr size_t kBlockX = 64;

// partial[i * kGemmW + j] += lanes over kb columns (a multiple of 8).
template <int NX, int NW>
void block_step(const float* x, size_t x_stride, const float* w, size_t w_stride, size_t kb, float* partial) {
  __m256 acc[NX][NW];
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) acc[i][j] = _mm256_loadu_ps(partial + (i * kGemmW + j) * 8);
  accumulate<LoadF32, float, NX, NW>(x, x_stride, w, w_stride, 0, kb, acc);
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) _mm256_storeu_ps(partial + (i * kGemmW + j) * 8, acc[i][j]);
}

using BlockStepFn = void (*)(const float*, size_t, const float*, size_t, size_t, float*);
constexpr BlockStepFn kBlockSteps[kGemmX][kGemmW] = {
    {block_step<1, 1>, block_step<1, 2>, block_step<1, 3>, block_step<1, 4>},
    {block_step<2, 1>, block_step<2, 2>, block_step<2, 3>, block_step<2, 4>},
    {block_step<3, 1>, block_step<3, 2>, block_step<3, 3>, block_step<3, 4>},
};

// Asks for kb columns from k0 of nw weight rows, so that they come from
// memory while the panel before them computes: the hardware prefetcher does
// not follow the jumps between panels (measured on Zen 3, bf16 prompt of 64:
// the panel widening's share of the time fell from 15% to 9%).
template <typename W>
void prefetch_panel(const W* w, size_t w_stride, int nw, size_t k0, size_t kb) {
  for (int j = 0; j < nw; ++j)
    for (size_t byte = 0; byte < kb * sizeof(W); byte += 64)
      _mm_prefetch(reinterpret_cast<const char*>(w + j * w_stride + k0) + byte, _MM_HINT_T0);
}

template <typename Load, typename W>
void gemm(const float* x, size_t x_stride, size_t n, const void* w_void, size_t w_stride, int64_t rows, size_t k,
          float* out, size_t out_stride) {
  const W* w = static_cast<const W*>(w_void);
  const size_t whole = k / 8 * 8;
  // Per thread, grown once: no allocation per product.
  thread_local std::vector<float> panel(kGemmW * kBlockK);
  thread_local std::vector<float> partial(kBlockX * kGemmW * 8);
  for (int64_t j0 = 0; j0 < rows; j0 += kGemmW) {
    const int nw = static_cast<int>(std::min<int64_t>(kGemmW, rows - j0));
    const W* wj = w + static_cast<size_t>(j0) * w_stride;
    for (size_t i0 = 0; i0 < n; i0 += kBlockX) {
      const size_t i_end = std::min(n, i0 + kBlockX);
      std::fill(partial.begin(), partial.end(), 0.0f);
      for (size_t k0 = 0; k0 < whole; k0 += kBlockK) {
        const size_t kb = std::min(kBlockK, whole - k0);
        // F32 weights are used where they lie; the others widened into the panel.
        const float* wp = panel.data();
        size_t wp_stride = kBlockK;
        if constexpr (std::is_same_v<W, float>) {
          wp = wj + k0;
          wp_stride = w_stride;
        } else {
          for (int j = 0; j < nw; ++j)
            for (size_t t = 0; t < kb; t += 8)
              _mm256_storeu_ps(panel.data() + j * kBlockK + t, Load::full(wj + j * w_stride, k0 + t));
        }
        // The next panel: these rows' next columns, else (after the last x
        // block) the next rows' first.
        if (k0 + kb < whole)
          prefetch_panel(wj, w_stride, nw, k0 + kb, std::min(kBlockK, whole - k0 - kb));
        else if (i_end == n && j0 + kGemmW < rows)
          prefetch_panel(wj + kGemmW * w_stride, w_stride, static_cast<int>(std::min<int64_t>(kGemmW, rows - j0 - kGemmW)),
                         0, std::min(kBlockK, whole));
        for (size_t i = i0; i < i_end; i += kGemmX) {
          const int nx = static_cast<int>(std::min<size_t>(kGemmX, i_end - i));
          kBlockSteps[nx - 1][nw - 1](x + i * x_stride + k0, x_stride, wp, wp_stride, kb,
                                      partial.data() + (i - i0) * kGemmW * 8);
        }
      }
      for (size_t i = i0; i < i_end; ++i)
        for (int j = 0; j < nw; ++j)
          out[i * out_stride + static_cast<size_t>(j0 + j)] = finish_one<Load, W>(
              x + i * x_stride, wj + j * w_stride, whole, k,
              _mm256_loadu_ps(partial.data() + ((i - i0) * kGemmW + static_cast<size_t>(j)) * 8));
    }
  }
}

// Quantized rows (quant/quant_layout.h's int_group): eight codes at a time
// become f32 weights in registers, scale * (code - zero), exactly the values
// dequantize_rows writes; they then meet x as tile() meets f32 weights, in
// the same order, so the outputs are the f32 tile's on the dequantized rows.
float widen_scale(DType dtype, const uint8_t* p) {
  if (dtype != DType::F16) return quant_scale(dtype, p);
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);  // F16C: exact, as f16_to_f32, and much faster
}

struct QuantRow {
  const uint8_t* codes;
  const uint8_t* scales;
  const uint8_t* zeros;  // null: every zero is 2^(bits - 1)
};

template <int Bits>
__m256i codes8(const uint8_t* codes, size_t at) {
  if constexpr (Bits == 8) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + at)));
  } else {
    uint32_t word;
    std::memcpy(&word, codes + at / 2, 4);
    const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(word)), shifts), _mm256_set1_epi32(0xF));
  }
}

template <int Bits>
int zero_of(const QuantLayout& l, const QuantRow& r, int64_t g) {
  if (!r.zeros) return 1 << (Bits - 1);
  return static_cast<int>(packed_value(r.zeros, Bits, g)) + l.zero_offset;
}

template <int Bits, int NX, int NW>
void tile_q(const float* x, size_t x_stride, const MatrixView& w, int64_t row, float* out, size_t out_stride) {
  const QuantLayout& l = *w.quant;
  const QuantPlanes p = w.planes();
  const size_t scale_size = dtype_size(l.scale_dtype);
  QuantRow rows[NW];
  for (int j = 0; j < NW; ++j) {
    const auto r = static_cast<size_t>(w.first_row + row + j);
    const auto* base = static_cast<const uint8_t*>(w.data);
    rows[j] = {base + p.codes + r * p.code_row, base + p.scales + r * static_cast<size_t>(p.groups) * scale_size,
               l.stored_zeros ? base + p.zeros + r * p.zero_row : nullptr};
  }
  const auto k = static_cast<size_t>(w.cols);
  const size_t group = l.group_size > 0 ? static_cast<size_t>(l.group_size) : k;
  const size_t whole = k / 8 * 8;
  __m256 acc[NX][NW];
  for (int i = 0; i < NX; ++i)
    for (int j = 0; j < NW; ++j) acc[i][j] = _mm256_setzero_ps();
  for (size_t g0 = 0; g0 < whole; g0 += group) {
    const int64_t g = static_cast<int64_t>(g0 / group);
    __m256 scale[NW];
    __m256i zero[NW];
    for (int j = 0; j < NW; ++j) {
      scale[j] = _mm256_set1_ps(widen_scale(l.scale_dtype, rows[j].scales + static_cast<size_t>(g) * scale_size));
      zero[j] = _mm256_set1_epi32(zero_of<Bits>(l, rows[j], g));
    }
    const size_t g_end = std::min(whole, g0 + group);
    for (size_t at = g0; at < g_end; at += 8) {
      __m256 xv[NX];
      for (int i = 0; i < NX; ++i) xv[i] = _mm256_loadu_ps(x + i * x_stride + at);
      for (int j = 0; j < NW; ++j) {
        const __m256i q = _mm256_sub_epi32(codes8<Bits>(rows[j].codes, at), zero[j]);
        const __m256 wv = _mm256_mul_ps(scale[j], _mm256_cvtepi32_ps(q));
        for (int i = 0; i < NX; ++i) acc[i][j] = _mm256_fmadd_ps(xv[i], wv, acc[i][j]);
      }
    }
  }
  // The last k % 8 weights widened into a row buffer of this thread, so the
  // f32 tiles' own finish_one adds them, in its order.
  thread_local std::vector<float> tail;
  tail.resize(k);
  for (int j = 0; j < NW; ++j) {
    for (size_t t = whole; t < k; ++t) {
      const int64_t g = static_cast<int64_t>(t / group);
      const float scale = widen_scale(l.scale_dtype, rows[j].scales + static_cast<size_t>(g) * scale_size);
      tail[t] = scale * static_cast<float>(static_cast<int>(packed_value(rows[j].codes, Bits, static_cast<int64_t>(t))) - zero_of<Bits>(l, rows[j], g));
    }
    for (int i = 0; i < NX; ++i)
      out[i * out_stride + static_cast<size_t>(j)] =
          finish_one<LoadF32, float>(x + i * x_stride, tail.data(), whole, k, acc[i][j]);
  }
}

// Rows [begin, end) of a quantized view into f32, eight weights at a time
// with the tiles' widening: the values dequantize_rows writes, faster.
template <int Bits>
void dequant_rows(const MatrixView& w, int64_t begin, int64_t end, float* out) {
  const QuantLayout& l = *w.quant;
  const QuantPlanes p = w.planes();
  const size_t scale_size = dtype_size(l.scale_dtype);
  const auto k = static_cast<size_t>(w.cols);
  const size_t group = l.group_size > 0 ? static_cast<size_t>(l.group_size) : k;
  const size_t whole = k / 8 * 8;
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t j = begin; j < end; ++j) {
    const auto r = static_cast<size_t>(w.first_row + j);
    const QuantRow row{base + p.codes + r * p.code_row, base + p.scales + r * static_cast<size_t>(p.groups) * scale_size,
                       l.stored_zeros ? base + p.zeros + r * p.zero_row : nullptr};
    float* o = out + static_cast<size_t>(j - begin) * k;
    for (size_t g0 = 0; g0 < whole; g0 += group) {
      const int64_t g = static_cast<int64_t>(g0 / group);
      const __m256 scale = _mm256_set1_ps(widen_scale(l.scale_dtype, row.scales + static_cast<size_t>(g) * scale_size));
      const __m256i zero = _mm256_set1_epi32(zero_of<Bits>(l, row, g));
      for (size_t at = g0; at < std::min(whole, g0 + group); at += 8)
        _mm256_storeu_ps(o + at, _mm256_mul_ps(scale, _mm256_cvtepi32_ps(_mm256_sub_epi32(codes8<Bits>(row.codes, at), zero))));
    }
    for (size_t t = whole; t < k; ++t) {
      const int64_t g = static_cast<int64_t>(t / group);
      o[t] = widen_scale(l.scale_dtype, row.scales + static_cast<size_t>(g) * scale_size) *
             static_cast<float>(static_cast<int>(packed_value(row.codes, Bits, static_cast<int64_t>(t))) - zero_of<Bits>(l, row, g));
    }
  }
}

void dequant_quant(const MatrixView& w, int64_t begin, int64_t end, float* out) {
  if (w.quant->bits == 8)
    dequant_rows<8>(w, begin, end, out);
  else
    dequant_rows<4>(w, begin, end, out);
}

void tile_quant(const float* x, size_t x_stride, int nx, const MatrixView& w, int64_t row, int nw, float* out,
                size_t out_stride) {
  using Fn = void (*)(const float*, size_t, const MatrixView&, int64_t, float*, size_t);
  static constexpr Fn table[2][2][4] = {
      {{tile_q<4, 1, 1>, tile_q<4, 1, 2>, tile_q<4, 1, 3>, tile_q<4, 1, 4>},
       {tile_q<4, 2, 1>, tile_q<4, 2, 2>, tile_q<4, 2, 3>, tile_q<4, 2, 4>}},
      {{tile_q<8, 1, 1>, tile_q<8, 1, 2>, tile_q<8, 1, 3>, tile_q<8, 1, 4>},
       {tile_q<8, 2, 1>, tile_q<8, 2, 2>, tile_q<8, 2, 3>, tile_q<8, 2, 4>}},
  };
  table[w.quant->bits == 8][nx - 1][nw - 1](x, x_stride, w, row, out, out_stride);
}

}  // namespace

const MatmulKernels& avx2_kernels() {
  static const MatmulKernels kernels{"avx2",
                                     2,
                                     4,
                                     4,
                                     tile_dispatch<LoadF32, float>,
                                     tile_dispatch<LoadBF16, uint16_t>,
                                     tile_dispatch<LoadF16, uint16_t>,
                                     gemm<LoadF32, float>,
                                     gemm<LoadBF16, uint16_t>,
                                     gemm<LoadF16, uint16_t>,
                                     tile_quant,
                                     avx2_quant_dot(),
                                     dequant_quant};
  return kernels;
}

}  // namespace strata::cpu
