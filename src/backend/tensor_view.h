// A non-owning view of a 2-D weight matrix: dtype, shape and a pointer.
//
// Views never own memory; whoever owns the bytes (a memory-mapped checkpoint,
// a host buffer) keeps them alive while views are in use (DESIGN.md: view vs
// owner).
#pragma once

#include <cstdint>

#include "strata/dtype.h"

namespace strata {

struct MatrixView {
  DType dtype = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0;  // output features
  int64_t cols = 0;  // input features (contiguous)

  const void* row(int64_t r) const {
    return static_cast<const uint8_t*>(data) + static_cast<size_t>(r * cols) * dtype_size(dtype);
  }
};

}  // namespace strata
