#include "quant/quant_layout.h"

#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/half.h"

namespace strata {
namespace {

size_t align_plane(size_t bytes) { return (bytes + kPlaneAlign - 1) / kPlaneAlign * kPlaneAlign; }

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The 256 E4M3 values: sign, 4 exponent bits (bias 7), 3 mantissa bits;
// exponent 0 is subnormal (m * 2^-9).
std::array<float, 256> make_e4m3_table() {
  std::array<float, 256> table{};
  for (int code = 0; code < 256; ++code) {
    const int exponent = (code >> 3) & 0xF, mantissa = code & 7;
    float magnitude;
    if ((code & 0x7F) == 0x7F)
      magnitude = std::numeric_limits<float>::quiet_NaN();
    else if (exponent == 0)
      magnitude = std::ldexp(static_cast<float>(mantissa), -9);
    else
      magnitude = std::ldexp(1.0f + static_cast<float>(mantissa) / 8.0f, exponent - 7);
    table[static_cast<size_t>(code)] = (code & 0x80) ? -magnitude : magnitude;
  }
  return table;
}

const std::array<float, 256>& e4m3_table() {
  static const std::array<float, 256> table = make_e4m3_table();
  return table;
}

void dequantize_int_rows(const QuantLayout& l, const QuantPlanes& p, const uint8_t* base, int64_t cols,
                         int64_t begin, int64_t end, float* out) {
  const size_t scale_size = dtype_size(l.scale_dtype);
  const int default_zero = 1 << (l.bits - 1);
  const uint8_t* group_index = l.group_index ? base + p.group_index : nullptr;
  const int64_t group_size = l.group_size > 0 ? l.group_size : cols;
  for (int64_t r = begin; r < end; ++r) {
    const uint8_t* codes = base + p.codes + static_cast<size_t>(r) * p.code_row;
    const uint8_t* scales = base + p.scales + static_cast<size_t>(r * p.groups) * scale_size;
    const uint8_t* zeros = l.stored_zeros ? base + p.zeros + static_cast<size_t>(r) * p.zero_row : nullptr;
    float* row = out + static_cast<size_t>((r - begin) * cols);
    // Groups are runs of columns unless a group index says otherwise; the
    // scale and zero are looked up once per run.
    int64_t g_current = -1;
    float scale = 0.0f;
    int zero = default_zero;
    for (int64_t c = 0; c < cols; ++c) {
      int64_t g = c / group_size;
      if (group_index) {
        int32_t stored;
        std::memcpy(&stored, group_index + static_cast<size_t>(c) * 4, 4);
        g = stored;
      }
      if (g != g_current) {
        g_current = g;
        scale = quant_scale(l.scale_dtype, scales + static_cast<size_t>(g) * scale_size);
        if (zeros) zero = static_cast<int>(packed_value(zeros, l.bits, g)) + l.zero_offset;
      }
      const int q = static_cast<int>(packed_value(codes, l.bits, c));
      row[c] = scale * static_cast<float>(q - zero);
    }
  }
}

void dequantize_fp8_rows(const QuantLayout& l, const QuantPlanes& p, const uint8_t* base, int64_t cols,
                         int64_t begin, int64_t end, float* out) {
  const auto& table = e4m3_table();
  for (int64_t r = begin; r < end; ++r) {
    const uint8_t* codes = base + p.codes + static_cast<size_t>(r * cols);
    const uint8_t* scales = base + p.scales + static_cast<size_t>((r / l.block_rows) * p.groups) * 4;
    float* row = out + static_cast<size_t>((r - begin) * cols);
    for (int64_t c0 = 0; c0 < cols; c0 += l.block_cols) {
      const float scale = quant_scale(DType::F32, scales + static_cast<size_t>(c0 / l.block_cols) * 4);
      const int64_t c_end = std::min(cols, c0 + l.block_cols);
      for (int64_t c = c0; c < c_end; ++c) row[c] = table[codes[c]] * scale;
    }
  }
}

}  // namespace

float quant_scale(DType dtype, const uint8_t* p) {
  if (dtype == DType::F32) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  return dtype == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

QuantPlanes quant_planes(const QuantLayout& l, int64_t rows, int64_t cols) {
  QuantPlanes p;
  const auto r = static_cast<size_t>(rows);
  if (l.kind == QuantKind::fp8_block) {
    p.groups = ceil_div(cols, l.block_cols);
    p.code_row = static_cast<size_t>(cols);
    p.scales = align_plane(r * p.code_row);
    p.total = align_plane(p.scales + static_cast<size_t>(ceil_div(rows, l.block_rows) * p.groups) * 4);
    return p;
  }
  p.groups = l.group_size > 0 ? ceil_div(cols, l.group_size) : 1;
  p.code_row = static_cast<size_t>(ceil_div(cols * l.bits, 8));
  p.zero_row = l.stored_zeros ? static_cast<size_t>(ceil_div(p.groups * l.bits, 8)) : 0;
  p.scales = align_plane(r * p.code_row);
  p.zeros = align_plane(p.scales + r * static_cast<size_t>(p.groups) * dtype_size(l.scale_dtype));
  p.group_index = align_plane(p.zeros + r * p.zero_row);
  p.total = align_plane(p.group_index + (l.group_index ? static_cast<size_t>(cols) * 4 : 0));
  return p;
}

void dequantize_rows(const QuantLayout& layout, const void* data, int64_t rows, int64_t cols, int64_t begin,
                     int64_t end, float* out) {
  const QuantPlanes planes = quant_planes(layout, rows, cols);
  const auto* base = static_cast<const uint8_t*>(data);
  if (layout.kind == QuantKind::fp8_block)
    dequantize_fp8_rows(layout, planes, base, cols, begin, end, out);
  else
    dequantize_int_rows(layout, planes, base, cols, begin, end, out);
}

float e4m3_to_f32(uint8_t code) { return e4m3_table()[code]; }

}  // namespace strata
