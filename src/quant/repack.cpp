#include "quant/repack.h"

#include <cstring>

namespace strata {
namespace {

uint32_t word_at(const StoredPart& part, int64_t index) {
  uint32_t w;
  std::memcpy(&w, part.data + static_cast<size_t>(index) * 4, 4);
  return w;
}

// Value `slot` of a 32-bit word holding 32 / bits values, the first in the low bits.
unsigned field(uint32_t word, int bits, int64_t slot) {
  return (word >> (bits * slot)) & ((1u << bits) - 1u);
}

// AWQ's GEMM layout: nibble k of a word holds output column 8 * (o / 8) +
// [0, 2, 4, 6, 1, 3, 5, 7][k]; this is the inverse, the nibble of column o % 8.
constexpr int kAwqNibbleOf[8] = {0, 4, 1, 5, 2, 6, 3, 7};

// The stored integer code, zero (as stored) and scale bytes of one element or
// group, per method (W[o, i], group g; vpw = values per 32-bit word).
struct Reader {
  QuantMethod method;
  const StoredQuantized& s;
  int bits;
  int64_t rows, groups, vpw;
  size_t scale_size;

  unsigned code(int64_t o, int64_t i) const {
    switch (method) {
      case QuantMethod::gptq:  // qweight [in * bits / 32, out]: packed along the input
        return field(word_at(s.codes, (i / vpw) * rows + o), bits, i % vpw);
      case QuantMethod::awq:  // qweight [in, out / 8]: packed along the output
        return field(word_at(s.codes, i * (rows / 8) + o / 8), 4, kAwqNibbleOf[o % 8]);
      case QuantMethod::compressed_tensors: {  // weight_packed [out, ceil(in / vpw)]
        const int64_t words = s.codes.shape[1];
        return field(word_at(s.codes, o * words + i / vpw), bits, i % vpw);
      }
      case QuantMethod::fp8: return s.codes.data[o * s.codes.shape[1] + i];
    }
    return 0;
  }
  unsigned zero(int64_t o, int64_t g) const {
    switch (method) {
      case QuantMethod::gptq:  // qzeros [groups, out * bits / 32]: packed along the output
        return field(word_at(s.zeros, g * (rows / vpw) + o / vpw), bits, o % vpw);
      case QuantMethod::awq:  // qzeros [in / g, out / 8], in the weights' nibble order
        return field(word_at(s.zeros, g * (rows / 8) + o / 8), 4, kAwqNibbleOf[o % 8]);
      case QuantMethod::compressed_tensors:  // weight_zero_point [ceil(out / vpw), groups]
        return field(word_at(s.zeros, (o / vpw) * groups + g), bits, o % vpw);
      case QuantMethod::fp8: return 0;
    }
    return 0;
  }
  const uint8_t* scale(int64_t o, int64_t g) const {
    // GPTQ and AWQ store scales [groups, out]; compressed-tensors [out, groups].
    const int64_t index = method == QuantMethod::compressed_tensors ? o * groups + g : g * rows + o;
    return s.scales.data + static_cast<size_t>(index) * scale_size;
  }
};

void zero_range(uint8_t* dst, size_t from, size_t to) {
  if (to > from) std::memset(dst + from, 0, to - from);
}

}  // namespace

void repack_rows(QuantMethod method, const QuantLayout& layout, const StoredQuantized& stored, int64_t rows,
                 int64_t cols, int64_t row_begin, int64_t row_end, uint8_t* dst) {
  const QuantPlanes p = quant_planes(layout, rows, cols);
  const auto r = static_cast<size_t>(rows);
  if (method == QuantMethod::fp8) {
    // Already row-major: the codes' rows, and the scales with the first row.
    const auto begin = static_cast<size_t>(row_begin) * p.code_row, end = static_cast<size_t>(row_end) * p.code_row;
    std::memcpy(dst + begin, stored.codes.data + begin, end - begin);
    if (row_begin == 0) {
      const size_t scale_bytes = static_cast<size_t>(stored.scales.shape[0] * stored.scales.shape[1]) * 4;
      std::memcpy(dst + p.scales, stored.scales.data, scale_bytes);
      zero_range(dst, r * p.code_row, p.scales);
      zero_range(dst, p.scales + scale_bytes, p.total);
    }
    return;
  }
  const size_t scale_size = dtype_size(layout.scale_dtype);
  const Reader read{method, stored, layout.bits, rows, p.groups, 32 / layout.bits, scale_size};
  for (int64_t o = row_begin; o < row_end; ++o) {
    uint8_t* codes = dst + p.codes + static_cast<size_t>(o) * p.code_row;
    std::memset(codes, 0, p.code_row);
    for (int64_t i = 0; i < cols; ++i) pack_value(codes, layout.bits, i, read.code(o, i));
    uint8_t* scales = dst + p.scales + static_cast<size_t>(o * p.groups) * scale_size;
    for (int64_t g = 0; g < p.groups; ++g) std::memcpy(scales + static_cast<size_t>(g) * scale_size, read.scale(o, g), scale_size);
    if (layout.stored_zeros) {
      uint8_t* zeros = dst + p.zeros + static_cast<size_t>(o) * p.zero_row;
      std::memset(zeros, 0, p.zero_row);
      for (int64_t g = 0; g < p.groups; ++g) pack_value(zeros, layout.bits, g, read.zero(o, g));
    }
  }
  if (row_begin == 0) {
    // The padding after each plane, and the group index.
    zero_range(dst, r * p.code_row, p.scales);
    zero_range(dst, p.scales + r * static_cast<size_t>(p.groups) * scale_size, p.zeros);
    zero_range(dst, p.zeros + r * p.zero_row, p.group_index);
    size_t end = p.group_index;
    if (layout.group_index) {
      std::memcpy(dst + p.group_index, stored.group_index.data, static_cast<size_t>(cols) * 4);
      end += static_cast<size_t>(cols) * 4;
    }
    zero_range(dst, end, p.total);
  }
}

}  // namespace strata
