#include <cuda_fp16.h>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_quant.h"
#include "strata/error.h"

namespace strata::cuda {
namespace {

constexpr int kThreads = 256;

// A quantized block's planes and shape, by value for the kernels.
struct QuantBlock {
  const uint8_t* codes;
  const uint8_t* scales;
  const uint8_t* zeros;        // null: every zero is default_zero
  const uint8_t* group_index;  // null: groups are runs of group_size columns
  int64_t cols, groups, group_size;
  uint64_t code_row, zero_row;
  int bits, scale_bytes, zero_offset, default_zero;
  bool fp8;
  int64_t block_rows, block_cols;  // fp8
  bool scale_bf16;                 // 2-byte scales: bf16, else f16
};

QuantBlock block_of(const MatrixView& w) {
  const QuantLayout& l = *w.quant;
  const QuantPlanes p = w.planes();
  const auto* base = static_cast<const uint8_t*>(w.data);
  QuantBlock b{};
  b.codes = base + p.codes;
  b.scales = base + p.scales;
  b.cols = w.cols;
  b.groups = p.groups;
  b.code_row = p.code_row;
  b.fp8 = l.kind == QuantKind::fp8_block;
  if (b.fp8) {
    b.block_rows = l.block_rows;
    b.block_cols = l.block_cols;
    return b;
  }
  b.zeros = l.stored_zeros ? base + p.zeros : nullptr;
  b.group_index = l.group_index ? base + p.group_index : nullptr;
  b.group_size = l.group_size > 0 ? l.group_size : w.cols;
  b.zero_row = p.zero_row;
  b.bits = l.bits;
  b.scale_bytes = static_cast<int>(dtype_size(l.scale_dtype));
  b.scale_bf16 = l.scale_dtype == DType::BF16;
  b.zero_offset = l.zero_offset;
  b.default_zero = 1 << (l.bits - 1);
  return b;
}

// Bytes are read one at a time: a block keeps the alignment of wherever the
// tiers put it, and the planes are only 16-byte aligned within it.
__device__ __forceinline__ uint32_t load_le(const uint8_t* p, int bytes) {
  uint32_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}

__device__ __forceinline__ float scale_at(const QuantBlock& b, const uint8_t* p) {
  const uint32_t v = load_le(p, b.scale_bytes);
  if (b.scale_bytes == 4) return __uint_as_float(v);
  if (b.scale_bf16) return __uint_as_float(v << 16);
  return __half2float(__ushort_as_half(static_cast<unsigned short>(v)));
}

// quant_layout.h's packed_value.
__device__ __forceinline__ int packed_value(const uint8_t* row, int bits, int64_t i) {
  if (bits == 8) return row[i];
  return (row[i >> 1] >> ((i & 1) * 4)) & 0xF;
}

// OCP FP8 E4M3, as quant_layout.cpp's table: 0x7F and 0xFF are NaN,
// exponent 0 is subnormal (m * 2^-9).
__device__ __forceinline__ float e4m3(uint8_t code) {
  const int exponent = (code >> 3) & 0xF, mantissa = code & 7;
  float magnitude;
  if ((code & 0x7F) == 0x7F)
    magnitude = __int_as_float(0x7FC00000);
  else if (exponent == 0)
    magnitude = ldexpf(static_cast<float>(mantissa), -9);
  else
    magnitude = ldexpf(static_cast<float>(8 + mantissa), exponent - 10);
  return (code & 0x80) ? -magnitude : magnitude;
}

// Weight [r, c] of the block (r counted in the whole block): one f32
// product, rounded once, as dequantize_rows computes it.
__device__ __forceinline__ float weight_at(const QuantBlock& b, int64_t r, int64_t c) {
  if (b.fp8) {
    const uint8_t* scale = b.scales + ((r / b.block_rows) * b.groups + c / b.block_cols) * 4;
    return __fmul_rn(e4m3(b.codes[r * b.cols + c]), __uint_as_float(load_le(scale, 4)));
  }
  const int64_t g = b.group_index ? static_cast<int32_t>(load_le(b.group_index + c * 4, 4)) : c / b.group_size;
  const float scale = scale_at(b, b.scales + (r * b.groups + g) * b.scale_bytes);
  const int zero = b.zeros ? packed_value(b.zeros + r * b.zero_row, b.bits, g) + b.zero_offset : b.default_zero;
  const int code = packed_value(b.codes + r * b.code_row, b.bits, c);
  return __fmul_rn(scale, static_cast<float>(code - zero));
}

// out[i, c] = weight [first + i, c] for i < count.
__global__ void dequantize_kernel(QuantBlock b, int64_t first, int64_t count, float* __restrict__ out) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= count * b.cols) return;
  out[i] = weight_at(b, first + i / b.cols, i % b.cols);
}

// out[i, c] = weight [first + ids[i], c]: one block per id.
__global__ void gather_kernel(QuantBlock b, int64_t first, const int32_t* __restrict__ ids, float* __restrict__ out) {
  const int64_t r = first + ids[blockIdx.x];
  float* row = out + static_cast<int64_t>(blockIdx.x) * b.cols;
  for (int64_t c = threadIdx.x; c < b.cols; c += blockDim.x) row[c] = weight_at(b, r, c);
}

}  // namespace

bool quant_kernels_support(const QuantLayout& layout) {
  if (layout.kind == QuantKind::fp8_block) return layout.block_rows > 0 && layout.block_cols > 0;
  return (layout.bits == 4 || layout.bits == 8) &&
         (layout.scale_dtype == DType::F16 || layout.scale_dtype == DType::BF16 || layout.scale_dtype == DType::F32);
}

void dequantize_rows(const MatrixView& w, int64_t begin, int64_t end, float* out, cudaStream_t stream) {
  const int64_t elements = (end - begin) * w.cols;
  if (elements <= 0) return;
  const auto blocks = static_cast<unsigned>((elements + kThreads - 1) / kThreads);
  dequantize_kernel<<<blocks, kThreads, 0, stream>>>(block_of(w), w.first_row + begin, end - begin, out);
  check_launch();
}

void gather_dequantized_rows(const MatrixView& table, const int32_t* ids, size_t count, float* out,
                             cudaStream_t stream) {
  if (count == 0) return;
  gather_kernel<<<static_cast<unsigned>(count), kThreads, 0, stream>>>(block_of(table), table.first_row, ids, out);
  check_launch();
}

}  // namespace strata::cuda
