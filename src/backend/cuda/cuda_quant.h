// Quantized weights on a CUDA device (quant/quant_layout.h's layouts, as the
// tiers hold them): rows dequantized exactly into float32, the same values
// dequantize_rows gives on the host, bit for bit, so a product over them is
// the f32 product of the dequantized matrix. cuda_ops.cu multiplies such
// slices with the f32 kernels it has; embeddings gather rows through here.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/tensor_view.h"

namespace strata::cuda {

// Layouts these kernels read: int_group (4 or 8 bits, any group size, F16,
// BF16 or F32 scales, stored zeros, a group index) and fp8_block.
bool quant_kernels_support(const QuantLayout& layout);

// Rows [begin, end) of the quantized view w (device memory) into out
// ([end - begin, w.cols] f32, device memory), queued on stream.
void dequantize_rows(const MatrixView& w, int64_t begin, int64_t end, float* out, cudaStream_t stream);

// out[i] = row ids[i] of the quantized table (ids in device memory).
void gather_dequantized_rows(const MatrixView& table, const int32_t* ids, size_t count, float* out,
                             cudaStream_t stream);

}  // namespace strata::cuda
