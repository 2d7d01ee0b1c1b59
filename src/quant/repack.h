// From a checkpoint's quantized tensors to the held layout (quant_layout.h),
// once at load. Each method's stored layout is described where it is read;
// the shapes and dtypes are checked before (format/quantized_checkpoint.h),
// so here they are trusted.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/quant_layout.h"
#include "strata/dtype.h"

namespace strata {

// The libraries whose on-disk layouts strata reads.
enum class QuantMethod : uint8_t { gptq, awq, compressed_tensors, fp8 };

// One stored tensor: its bytes at any alignment.
struct StoredPart {
  DType dtype = DType::I32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
};

// The stored tensors of one quantized Linear (W is [rows, cols] = [out, in]):
//   gptq: qweight, scales, qzeros, g_idx (unused unless the layout keeps a group index)
//   awq:  qweight, scales, qzeros
//   compressed_tensors: weight_packed, weight_scale, weight_zero_point (asymmetric only)
//   fp8:  weight, weight_scale_inv
struct StoredQuantized {
  StoredPart codes, scales, zeros, group_index;
};

// Writes rows [row_begin, row_end) of the held block at dst (sized by
// quant_bytes); the block's group index, if any, is written with row 0.
// Rows are independent, so callers may split them over threads.
void repack_rows(QuantMethod method, const QuantLayout& layout, const StoredQuantized& stored, int64_t rows,
                 int64_t cols, int64_t row_begin, int64_t row_end, uint8_t* dst);

}  // namespace strata
