#include "quant/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.h"

namespace strata {
namespace {

constexpr int64_t kGroup = 32;

// One group's scale (as stored, float16) and the squared error it leaves.
struct GroupChoice {
  uint16_t scale = 0;
  float error = INFINITY;
};

// x rounded to the nearest integer, ties to even, for |x| < 2^22: what
// nearbyint gives in the default rounding mode, without its library call
// (adding 1.5 * 2^23 leaves no fraction bits, and subtracting it is exact).
float round_to_even(float x) {
  constexpr float kShift = 12582912.0f;
  return (x + kShift) - kShift;
}

// The level of weight x under scale s, in [lo, hi]. Clamped a level beyond
// the range first, so the rounding stays exact.
float level_of(float x, float s, float lo, float hi) {
  return std::clamp(round_to_even(std::clamp(x / s, lo - 1.0f, hi + 1.0f)), lo, hi);
}

// The group's squared error under scale d, rounded to float16 first; kept
// in best when it is the least so far.
void try_scale(const float* w, int n, float lo, float hi, float d, GroupChoice& best) {
  const uint16_t stored = f32_to_f16(d);
  const float s = f16_to_f32(stored);
  if (s == 0.0f || !std::isfinite(s)) return;
  float error = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float e = w[i] - s * level_of(w[i], s, lo, hi);
    error += e * e;
  }
  if (error < best.error) best = {stored, error};
}

GroupChoice quantize_group(const float* w, int n, float lo, float hi, QuantizeMethod method) {
  float amax = 0.0f, extreme = 0.0f;
  for (int i = 0; i < n; ++i)
    if (std::fabs(w[i]) > amax) {
      amax = std::fabs(w[i]);
      extreme = w[i];
    }
  GroupChoice best;
  // A float16 scale cannot go past 65504: larger weights clip.
  const float plain = std::min(amax / hi, 65504.0f);
  try_scale(w, n, lo, hi, plain, best);
  if (method == QuantizeMethod::search) {
    for (int step = -8; step <= 8; ++step)
      if (step != 0) try_scale(w, n, lo, hi, amax / (hi + 0.125f * static_cast<float>(step)), best);
    // The largest magnitude onto qmin: a negative scale when it is positive.
    try_scale(w, n, lo, hi, extreme / lo, best);
  }
  if (best.error == INFINITY) best = {0, 0.0f};  // all zeros (or too small for a float16 scale)
  return best;
}

}  // namespace

QuantLayout in_situ_layout(const InSituQuant& q) {
  QuantLayout l;
  l.kind = QuantKind::int_group;
  l.bits = q.bits;
  l.group_size = kGroup;
  l.scale_dtype = DType::F16;
  l.stored_zeros = false;
  l.name = "int" + std::to_string(q.bits) + " g32" + (q.method == QuantizeMethod::round_to_nearest ? " rtn" : "");
  return l;
}

void quantize_rows(const InSituQuant& q, const QuantLayout& layout, const float* w, int64_t rows, int64_t cols,
                   int64_t begin, int64_t end, uint8_t* dst) {
  const QuantPlanes p = quant_planes(layout, rows, cols);
  const unsigned zero = 1u << (q.bits - 1);
  const auto lo = static_cast<float>(-(1 << (q.bits - 1))), hi = static_cast<float>((1 << (q.bits - 1)) - 1);
  for (int64_t r = begin; r < end; ++r) {
    const float* row = w + static_cast<size_t>((r - begin) * cols);
    uint8_t* codes = dst + p.codes + static_cast<size_t>(r) * p.code_row;
    std::memset(codes, 0, p.code_row);
    auto* scales = dst + p.scales + static_cast<size_t>(r * p.groups) * 2;
    for (int64_t g = 0; g < p.groups; ++g) {
      const int64_t first = g * kGroup;
      const int n = static_cast<int>(std::min(kGroup, cols - first));
      const GroupChoice c = quantize_group(row + first, n, lo, hi, q.method);
      std::memcpy(scales + static_cast<size_t>(g) * 2, &c.scale, 2);
      const float s = f16_to_f32(c.scale);
      for (int i = 0; i < n; ++i) {
        const int level = s == 0.0f ? 0 : static_cast<int>(level_of(row[first + i], s, lo, hi));
        pack_value(codes, q.bits, first + i, static_cast<unsigned>(level + static_cast<int>(zero)));
      }
    }
  }
  if (begin == 0) {
    // The padding after the codes and the scales (no zeros or group index are stored).
    std::memset(dst + static_cast<size_t>(rows) * p.code_row, 0, p.scales - static_cast<size_t>(rows) * p.code_row);
    const size_t scales_end = p.scales + static_cast<size_t>(rows * p.groups) * 2;
    std::memset(dst + scales_end, 0, p.total - scales_end);
  }
}

}  // namespace strata
