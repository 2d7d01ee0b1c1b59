// A non-owning view of a 2-D weight matrix: its format, shape and a pointer.
//
// Views never own memory; whoever owns the bytes (a memory-mapped checkpoint,
// a host buffer) keeps them alive while views are in use (DESIGN.md: view vs
// owner). A plain matrix is rows x cols elements of dtype; a quantized one
// (quant set) is one block of bytes in that layout (quant/quant_layout.h),
// which only the layout's functions read.
#pragma once

#include <cstdint>

#include "quant/quant_layout.h"
#include "strata/dtype.h"

namespace strata {

struct MatrixView {
  DType dtype = DType::F32;  // of a plain matrix's elements
  const void* data = nullptr;
  int64_t rows = 0;  // output features
  int64_t cols = 0;  // input features (contiguous)
  const QuantLayout* quant = nullptr;  // null: plain
  // A quantized view of some rows of its block (a part of a fused
  // projection): the block's rows (0: rows) and this view's first row in it.
  int64_t block_rows = 0;
  int64_t first_row = 0;

  // Row r of a plain matrix.
  const void* row(int64_t r) const {
    return static_cast<const uint8_t*>(data) + static_cast<size_t>(r * cols) * dtype_size(dtype);
  }
  // Rows [first, first + count) as a matrix of their own.
  MatrixView rows_view(int64_t first, int64_t count) const {
    MatrixView v = *this;
    v.rows = count;
    if (quant) {
      v.block_rows = quant_block_rows();
      v.first_row = first_row + first;
    } else {
      v.data = row(first);
    }
    return v;
  }
  // A quantized view's block: its rows, and where its planes start.
  int64_t quant_block_rows() const { return block_rows ? block_rows : rows; }
  QuantPlanes planes() const { return quant_planes(*quant, quant_block_rows(), cols); }
  // Rows [begin, end) of a quantized matrix dequantized into out ([end - begin, cols] f32).
  void dequantize(int64_t begin, int64_t end, float* out) const {
    dequantize_rows(*quant, data, quant_block_rows(), cols, first_row + begin, first_row + end, out);
  }
  // Bytes the matrix occupies.
  uint64_t bytes() const {
    return quant ? quant_bytes(*quant, rows, cols) : static_cast<uint64_t>(rows * cols) * dtype_size(dtype);
  }
};

}  // namespace strata
