// Fast mode for quantized weights, AVX2: x in int8 blocks of 32 (a float
// scale each), integer products per block (8-bit: maddubs on |w| and x with
// w's sign, exact in 16 bits since |x| <= 127 and |w| <= 128), each block's
// integer sum scaled by both scales and added in f32. The summation order is fixed per output, so results do not depend on
// how rows are split.
#include <immintrin.h>

#include <cstring>

#include "backend/cpu/kernels.h"

namespace strata::cpu {
namespace {

// 32 8-bit weight levels (code - 128) of one group, as int8.
template <int Bits>
__m256i levels32(const uint8_t* codes) {
  static_assert(Bits == 8);
  const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes));
  return _mm256_sub_epi8(c, _mm256_set1_epi8(static_cast<char>(0x80)));
}

// 32 4-bit codes as unsigned bytes, in column order.
__m256i codes32_4bit(const uint8_t* codes) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes));
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(b, mask), hi = _mm_and_si128(_mm_srli_epi16(b, 4), mask);
  return _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi));
}

float lane_sum(__m256 v) {
  const __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  __m128 s = _mm_add_ps(lo, hi);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// One group's 32 products of weights and x, as eight f32 lane sums.
// 4-bit codes are multiplied as they are (0..15, unsigned) and the zero's
// share, 8 * sum(x block), is taken off separately: three instructions fewer
// per group than the signed levels 8-bit weights need.
template <int Bits>
__m256 group_sums(__m256i xv, const uint8_t* codes) {
  __m256i products;
  if constexpr (Bits == 8) {
    const __m256i wv = levels32<8>(codes);
    products = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(xv, wv));
  } else {
    products = _mm256_maddubs_epi16(codes32_4bit(codes), xv);
  }
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(products, _mm256_set1_epi16(1)));
}

// NR weight rows at once (rows apart by code_stride bytes of codes and
// scale_stride of scales), so each block of x is loaded once for all. Eight
// groups' combined scales (x's times the weights', F16C-widened) are made
// with one vector multiply, and each group takes its lane.
template <int Bits, int NR>
void dot_rows(const int8_t* xq, const float* xd, const int32_t* xs, const uint8_t* codes, size_t code_stride,
              const uint8_t* scales, size_t scale_stride, int64_t groups, float* out) {
  constexpr int64_t kGroupBytes = 32 * Bits / 8;
  __m256 acc[NR], zero_share[NR];
  for (int r = 0; r < NR; ++r) acc[r] = zero_share[r] = _mm256_setzero_ps();
  int64_t g = 0;
  for (; g + 8 <= groups; g += 8) {
    const __m256 xd8 = _mm256_loadu_ps(xd + g);
    __m256 scale8[NR];
    for (int r = 0; r < NR; ++r)
      scale8[r] = _mm256_mul_ps(xd8, _mm256_cvtph_ps(_mm_loadu_si128(
                                         reinterpret_cast<const __m128i*>(scales + r * scale_stride + g * 2))));
    if constexpr (Bits == 4) {
      const __m256 share = _mm256_cvtepi32_ps(
          _mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs + g)), 3));  // 8 * sum(x)
      for (int r = 0; r < NR; ++r) zero_share[r] = _mm256_fmadd_ps(scale8[r], share, zero_share[r]);
    }
    for (int u = 0; u < 8; ++u) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + (g + u) * 32));
      const __m256i lane = _mm256_set1_epi32(u);
      for (int r = 0; r < NR; ++r)
        acc[r] = _mm256_fmadd_ps(group_sums<Bits>(xv, codes + r * code_stride + (g + u) * kGroupBytes),
                                 _mm256_permutevar8x32_ps(scale8[r], lane), acc[r]);
    }
  }
  float tail_share[NR] = {};
  for (; g < groups; ++g) {
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + g * 32));
    for (int r = 0; r < NR; ++r) {
      uint16_t h;
      std::memcpy(&h, scales + r * scale_stride + g * 2, 2);
      const float scale = xd[g] * _cvtsh_ss(h);  // F16C: exact
      acc[r] = _mm256_fmadd_ps(group_sums<Bits>(xv, codes + r * code_stride + g * kGroupBytes), _mm256_set1_ps(scale), acc[r]);
      if constexpr (Bits == 4) tail_share[r] += scale * static_cast<float>(8 * xs[g]);
    }
  }
  for (int r = 0; r < NR; ++r) out[r] = lane_sum(acc[r]) - (lane_sum(zero_share[r]) + tail_share[r]);
}

void dot_quant(const int8_t* xq, const float* xd, const int32_t* xs, const uint8_t* codes, size_t code_stride,
               const uint8_t* scales, size_t scale_stride, int64_t groups, int bits, int rows, float* out) {
  for (; rows >= 4; rows -= 4, codes += 4 * code_stride, scales += 4 * scale_stride, out += 4) {
    if (bits == 8)
      dot_rows<8, 4>(xq, xd, xs, codes, code_stride, scales, scale_stride, groups, out);
    else
      dot_rows<4, 4>(xq, xd, xs, codes, code_stride, scales, scale_stride, groups, out);
  }
  for (; rows > 0; --rows, codes += code_stride, scales += scale_stride, ++out) {
    if (bits == 8)
      dot_rows<8, 1>(xq, xd, xs, codes, code_stride, scales, scale_stride, groups, out);
    else
      dot_rows<4, 1>(xq, xd, xs, codes, code_stride, scales, scale_stride, groups, out);
  }
}

}  // namespace

QuantDotFn avx2_quant_dot() { return dot_quant; }

}  // namespace strata::cpu
