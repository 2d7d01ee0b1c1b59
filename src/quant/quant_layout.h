// How a quantized matrix is held in every tier (DESIGN.md, "Weight formats"):
// one block of bytes per matrix, in a row-major layout the compute kernels
// read a row at a time. GPTQ, AWQ and compressed-tensors checkpoints pack
// their integers along different axes; they are repacked once, at load, into
// this layout, which keeps their bytes per weight (quant/repack.h). FP8's
// stored layout already is row-major and is kept.
//
// int_group, for a [rows, cols] matrix with G groups per row:
//   codes   rows x ceil(cols * bits / 8) bytes; 4-bit: column 2j in the low
//           nibble of byte j, column 2j+1 in the high one
//   scales  rows x G, each scale_dtype (F16, BF16 or F32)
//   zeros   rows x ceil(G * bits / 8) bytes, packed as the codes (only when stored)
//   groups  cols x int32: the group of each column (only GPTQ's desc_act)
//   W[r, c] = scale[r, g] * (code[r, c] - (zero[r, g] + zero_offset)),  g = group of c
// fp8_block:
//   codes   rows x cols bytes of OCP FP8 E4M3
//   scales  ceil(rows / block_rows) x ceil(cols / block_cols) F32
//   W[r, c] = e4m3(code[r, c]) * scale[r / block_rows, c / block_cols]
// Planes start at multiples of kPlaneAlign; the block's size is a multiple of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "strata/dtype.h"

namespace strata {

enum class QuantKind : uint8_t { int_group, fp8_block };

// What every quantized matrix of a model shares; its shape is the view's.
struct QuantLayout {
  QuantKind kind = QuantKind::int_group;
  int bits = 4;                    // int_group: 4 or 8
  int64_t group_size = 0;          // int_group: columns per group; 0: one group per row
  DType scale_dtype = DType::F16;  // int_group: F16, BF16 or F32
  bool stored_zeros = true;        // int_group: else every zero is 2^(bits - 1)
  int zero_offset = 0;             // int_group: added to each stored zero (GPTQ v1 stores zero - 1)
  bool group_index = false;        // int_group: a group per column is stored
  int64_t block_rows = 0, block_cols = 0;  // fp8_block
  std::string name;                // for messages and tables: "GPTQ int4 g32"
};

inline constexpr size_t kPlaneAlign = 16;

// Where each plane starts in a matrix's block, and the block's size.
struct QuantPlanes {
  int64_t groups = 0;    // int_group: per row; fp8_block: scale columns
  size_t code_row = 0;   // bytes of one row's codes
  size_t zero_row = 0;   // bytes of one row's zeros (0 when none are stored)
  size_t codes = 0, scales = 0, zeros = 0, group_index = 0, total = 0;
};
QuantPlanes quant_planes(const QuantLayout& layout, int64_t rows, int64_t cols);

// Value i of a row of packed `bits`-wide unsigned integers (codes or zeros;
// 4 bits: two per byte, the low nibble first), and the same for writing into
// a zeroed row.
inline unsigned packed_value(const uint8_t* row, int bits, int64_t i) {
  if (bits == 8) return row[i];
  return (row[i >> 1] >> ((i & 1) * 4)) & 0xFu;
}
inline void pack_value(uint8_t* row, int bits, int64_t i, unsigned value) {
  if (bits == 8)
    row[i] = static_cast<uint8_t>(value);
  else
    row[i >> 1] = static_cast<uint8_t>(row[i >> 1] | (value << ((i & 1) * 4)));
}

// Bytes of a [rows, cols] matrix held in this layout.
inline uint64_t quant_bytes(const QuantLayout& layout, int64_t rows, int64_t cols) {
  return quant_planes(layout, rows, cols).total;
}

// Rows [begin, end) of the [rows, cols] matrix whose block starts at data,
// dequantized in float32 into out ([end - begin, cols], row-major): the code
// minus the zero is an exact small integer, its product with the widened
// scale is rounded once, as the libraries' float32 dequantization does. The
// block may sit at any address (a disk read keeps its file offset's alignment).
void dequantize_rows(const QuantLayout& layout, const void* data, int64_t rows, int64_t cols, int64_t begin,
                     int64_t end, float* out);

// A stored scale (F32, F16 or BF16 at any address) widened exactly.
float quant_scale(DType dtype, const uint8_t* p);

// OCP FP8 E4M3: no infinities, 0x7F and 0xFF are NaN, largest 448.
float e4m3_to_f32(uint8_t code);

}  // namespace strata
