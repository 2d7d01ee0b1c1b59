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

  // Row r of a plain matrix.
  const void* row(int64_t r) const {
    return static_cast<const uint8_t*>(data) + static_cast<size_t>(r * cols) * dtype_size(dtype);
  }
  // Bytes the matrix occupies.
  uint64_t bytes() const {
    return quant ? quant_bytes(*quant, rows, cols) : static_cast<uint64_t>(rows * cols) * dtype_size(dtype);
  }
};

}  // namespace strata
