// Fast mode for quantized weights, AVX2: x in int8 blocks of 32 (a float
// scale each), integer products per block (8-bit: maddubs on |w| and x with
// w's sign, exact in 16 bits since |x| <= 127 and |w| <= 128), each block's
// integer sum scaled by both scales and added in f32. The summation order is
// fixed per output, so results do not depend on how rows are split.
#include <immintrin.h>

#include <cstring>

#include "backend/cpu/kernels.h"

namespace strata::cpu {
namespace {

// 32 8-bit weight levels (code - 128) of one group, as int8.
__m256i levels32(const uint8_t* codes) {
  const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes));
  return _mm256_sub_epi8(c, _mm256_set1_epi8(static_cast<char>(0x80)));
}

float lane_sum(__m256 v) {
  const __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  __m128 s = _mm_add_ps(lo, hi);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// One group's 32 products of 8-bit weights and x, as eight int32 lane sums
// widened to f32.
__m256 group_sums_8bit(__m256i xv, const uint8_t* codes) {
  const __m256i wv = levels32(codes);
  const __m256i products = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(xv, wv));
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(products, _mm256_set1_epi16(1)));
}

// Two groups' 64 products of 4-bit codes and x in nibble order (kernels.h's
// order_activations_4bit): one 32-byte load holds both groups' codes, its
// low nibbles meet the first 32 bytes of x and its high nibbles the next 32,
// so no byte is shuffled. Lanes 0-3 hold the first group's sums, 4-7 the
// second's. Codes (0..15) are multiplied as they are, unsigned; the zero's
// share is taken off by the caller. Each 16-bit sum stays below
// 2 * 2 * 15 * 127.
__m256 pair_sums_4bit(__m256i x_low, __m256i x_high, const uint8_t* codes) {
  const __m256i mask = _mm256_set1_epi8(0x0F);
  const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes));
  const __m256i low = _mm256_and_si256(c, mask), high = _mm256_and_si256(_mm256_srli_epi16(c, 4), mask);
  const __m256i products =
      _mm256_add_epi16(_mm256_maddubs_epi16(low, x_low), _mm256_maddubs_epi16(high, x_high));
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(products, _mm256_set1_epi16(1)));
}

// A last unpaired 4-bit group: 16 bytes of codes, x as its even columns then
// its odd ones.
__m256 group_sums_4bit(__m256i xv, const uint8_t* codes) {
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes));
  const __m256i both = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(c, 4), mask), _mm_and_si128(c, mask));
  const __m256i products = _mm256_maddubs_epi16(both, xv);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(products, _mm256_set1_epi16(1)));
}

// NR weight rows at once (rows apart by code_stride bytes of codes and
// scale_stride of scales), so each block of x is loaded once for all. Eight
// groups' combined scales (x's times the weights', F16C-widened) are made
// with one vector multiply, and each group (8-bit) or pair of groups (4-bit)
// takes its lanes.
template <int Bits, int NR>
void dot_rows(const int8_t* xq, const float* xd, const int32_t* xs, const uint8_t* codes, size_t code_stride,
              const uint8_t* scales, size_t scale_stride, int64_t groups, float* out) {
  constexpr int64_t kGroupBytes = 32 * Bits / 8;
  __m256 acc[NR], zero_share[NR];
  for (int r = 0; r < NR; ++r) acc[r] = zero_share[r] = _mm256_setzero_ps();
  int64_t g = 0;
  for (; g + 8 <= groups; g += 8) {
    // The bytes of the rows two blocks of NR ahead, at the same columns:
    // rows are short (a few KiB), so the hardware prefetchers, which stop at
    // page ends, would otherwise start cold on every block. (A prefetch past
    // the matrix's end is harmless: prefetches never fault.)
    for (int r = 0; r < NR; ++r) {
      const uint8_t* next = codes + (2 * NR + r) * code_stride + g * kGroupBytes;
      for (int64_t line = 0; line < 8 * kGroupBytes; line += 64)
        _mm_prefetch(reinterpret_cast<const char*>(next + line), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(scales + (2 * NR + r) * scale_stride + g * 2), _MM_HINT_T0);
    }
    const __m256 xd8 = _mm256_loadu_ps(xd + g);
    __m256 scale8[NR];
    for (int r = 0; r < NR; ++r)
      scale8[r] = _mm256_mul_ps(xd8, _mm256_cvtph_ps(_mm_loadu_si128(
                                         reinterpret_cast<const __m128i*>(scales + r * scale_stride + g * 2))));
    if constexpr (Bits == 8) {
      for (int u = 0; u < 8; ++u) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + (g + u) * 32));
        const __m256i lane = _mm256_set1_epi32(u);
        for (int r = 0; r < NR; ++r)
          acc[r] = _mm256_fmadd_ps(group_sums_8bit(xv, codes + r * code_stride + (g + u) * kGroupBytes),
                                   _mm256_permutevar8x32_ps(scale8[r], lane), acc[r]);
      }
    } else {
      const __m256 share = _mm256_cvtepi32_ps(
          _mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs + g)), 3));  // 8 * sum(x)
      for (int r = 0; r < NR; ++r) zero_share[r] = _mm256_fmadd_ps(scale8[r], share, zero_share[r]);
      for (int u = 0; u < 8; u += 2) {
        const __m256i x_low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + (g + u) * 32));
        const __m256i x_high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + (g + u) * 32 + 32));
        const __m256i lanes = _mm256_setr_epi32(u, u, u, u, u + 1, u + 1, u + 1, u + 1);
        for (int r = 0; r < NR; ++r)
          acc[r] = _mm256_fmadd_ps(pair_sums_4bit(x_low, x_high, codes + r * code_stride + (g + u) * kGroupBytes),
                                   _mm256_permutevar8x32_ps(scale8[r], lanes), acc[r]);
      }
    }
  }
  // Fewer than eight groups left: scalar scales, one group at a time (pairs
  // for 4-bit, as x's order has them).
  float tail_share[NR] = {};
  auto scale_of = [&](int r, int64_t group) {
    uint16_t h;
    std::memcpy(&h, scales + r * scale_stride + group * 2, 2);
    return xd[group] * _cvtsh_ss(h);  // F16C: exact
  };
  for (; g < groups; g += Bits == 4 && g + 2 <= groups ? 2 : 1) {
    const __m256i x_low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + g * 32));
    for (int r = 0; r < NR; ++r) {
      const uint8_t* row_codes = codes + r * code_stride + g * kGroupBytes;
      const float scale = scale_of(r, g);
      if constexpr (Bits == 8) {
        acc[r] = _mm256_fmadd_ps(group_sums_8bit(x_low, row_codes), _mm256_set1_ps(scale), acc[r]);
      } else if (g + 2 <= groups) {
        const __m256i x_high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + g * 32 + 32));
        const float next = scale_of(r, g + 1);
        acc[r] = _mm256_fmadd_ps(pair_sums_4bit(x_low, x_high, row_codes),
                                 _mm256_setr_ps(scale, scale, scale, scale, next, next, next, next), acc[r]);
        tail_share[r] += scale * static_cast<float>(8 * xs[g]) + next * static_cast<float>(8 * xs[g + 1]);
      } else {
        acc[r] = _mm256_fmadd_ps(group_sums_4bit(x_low, row_codes), _mm256_set1_ps(scale), acc[r]);
        tail_share[r] += scale * static_cast<float>(8 * xs[g]);
      }
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
