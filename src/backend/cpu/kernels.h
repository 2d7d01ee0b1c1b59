// Inner kernels of the CPU matrix product, one set per instruction set,
// chosen once at run time from the CPU's features.
//
// A tile computes out[i * out_stride + j] = dot(x row i, w row j) for
// i < nx <= tile_x and j < nw <= tile_w (tile_w_single when nx == 1). Weights are F32, BF16 or F16 and are
// widened to f32 exactly on the fly; accumulation is f32. Each output element
// is reduced in the same order whatever the tile shape, so splitting work
// differently (threads, batch rows) never changes a result bit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "backend/tensor_view.h"
#include "core/half.h"
#include "strata/dtype.h"

namespace strata::cpu {

using TileFn = void (*)(const float* x, size_t x_stride, int nx, const void* w, size_t w_stride,
                        int nw, size_t k, float* out, size_t out_stride);

// The same products for many x rows (a prompt, a batch): out[i * out_stride + j]
// for i < n, j < rows, each summed exactly as the tiles sum it, blocked so
// weights and x stay in cache.
using GemmFn = void (*)(const float* x, size_t x_stride, size_t n, const void* w, size_t w_stride, int64_t rows,
                        size_t k, float* out, size_t out_stride);

// A tile as TileFn computes it for weight rows [row, row + nw) of a quantized
// matrix, widening each weight in registers exactly as dequantize_rows does,
// so every output equals the f32 tile's on the dequantized rows, bit for
// bit. Only for layouts quant_tile_supports() accepts.
using QuantTileFn = void (*)(const float* x, size_t x_stride, int nx, const MatrixView& w, int64_t row, int nw,
                             float* out, size_t out_stride);
// int_group layouts without a group index whose groups are whole multiples
// of 8 columns (or one group per row).
bool quant_tile_supports(const QuantLayout& layout);

// Fast mode (backend/ops.h's ComputeMode) for quantized weights that
// quant_dot_supports() accepts: x rounded per block of 32 to int8 with a
// float scale (quantize_activations), integer products per block, each
// block's sum times both scales added in f32, as llama.cpp's Q8_0 does.
// out[r] = x row (xq, xd) times weight row r < rows, whose codes and scales
// start at codes + r * code_stride and scales + r * scale_stride (`groups`
// groups of 32 columns, `bits` wide). Each output is summed in the same
// order whatever `rows` is.
// xs: each x block's sum of levels. For 4-bit weights xq is in the order
// order_activations_4bit gives.
using QuantDotFn = void (*)(const int8_t* xq, const float* xd, const int32_t* xs, const uint8_t* codes,
                            size_t code_stride, const uint8_t* scales, size_t scale_stride, int64_t groups, int bits,
                            int rows, float* out);
// The in-situ layouts (quant/quantize.h): int8 or int4, groups of 32, float16
// scales, no stored zeros; cols a multiple of 32.
bool quant_dot_supports(const QuantLayout& layout, int64_t cols);
// n values of x (a multiple of 32) into n / 32 blocks: d = max|x| / 127,
// q = x / d rounded to nearest (all zero where max|x| is 0), s = sum of q.
void quantize_activations(const float* x, size_t n, int8_t* q, float* d, int32_t* s);
// The n levels q (a multiple of 32) in the order the 4-bit dot reads them, so
// that it never shuffles weight bytes: a 4-bit byte holds columns 2j (low
// nibble) and 2j + 1 (high), and 32 bytes hold two groups. Per pair of
// groups: the first's even columns, the second's even columns, the first's
// odd columns, the second's odd columns (16 each); a last unpaired group:
// its even columns, then its odd ones.
void order_activations_4bit(const int8_t* q, size_t n, int8_t* out);
QuantDotFn avx2_quant_dot();

struct MatmulKernels {
  const char* name;  // "avx512", "avx2" or "generic"
  int tile_x;
  int tile_w;
  int tile_w_single;  // weight rows per tile when there is one x row (decoding)
  TileFn tile_f32;
  TileFn tile_bf16;
  TileFn tile_f16;
  // Null where the set has none (the tiles then do all of it).
  GemmFn gemm_f32 = nullptr;
  GemmFn gemm_bf16 = nullptr;
  GemmFn gemm_f16 = nullptr;
  QuantTileFn tile_quant = nullptr;  // null: quantized rows are dequantized into f32 first
  QuantDotFn dot_quant = nullptr;    // null: fast mode computes quantized weights as exact does
  // Rows [begin, end) of a quantized view (quant_tile_supports) into f32, as
  // MatrixView::dequantize writes them; null: that is used.
  void (*dequant_quant)(const MatrixView& w, int64_t begin, int64_t end, float* out) = nullptr;

  TileFn tile_for(DType dtype) const;
  GemmFn gemm_for(DType dtype) const;
};

// The kernel set products use: the fastest this CPU supports, or the one
// force_kernels() named before the first product.
const MatmulKernels& best_kernels();
// Makes best_kernels() return "generic", "avx2" or "avx512" (the `strata`
// command reads STRATA_KERNELS, for benchmarks and tests). Throws
// strata::Error for an unknown name or a set this CPU cannot run.
void force_kernels(std::string_view name);

// Fast mode (backend/ops.h's ComputeMode) for BF16 weights: a tile as above
// whose x rows are already rounded to bf16; products of bf16 pairs, summed
// in f32.
struct FastBf16Kernels {
  void (*tile)(const uint16_t* x, size_t x_stride, int nx, const uint16_t* w, size_t w_stride, int nw, size_t k,
               float* out, size_t out_stride) = nullptr;
  void (*round)(const float* x, uint16_t* out, size_t n) = nullptr;  // to nearest even
};
// The AVX512-BF16 kernels when best_kernels() is the avx512 set and the CPU
// has AVX512-BF16; else nulls, and fast mode rounds x to bf16 and widens the
// weights as exact mode does (the same products, without the instruction).
FastBf16Kernels fast_bf16_kernels();

// Individual kernel sets; those the CPU cannot run must not be called.
const MatmulKernels& generic_kernels();
const MatmulKernels& avx2_kernels();
const MatmulKernels& avx512_kernels();
bool cpu_supports_avx2();
bool cpu_supports_avx512();
bool cpu_supports_avx512_bf16();
FastBf16Kernels avx512_bf16_kernels();

// The half-precision conversions (core/half.h), as the kernels name them.
using strata::bf16_to_f32;
using strata::f16_to_f32;
using strata::f32_to_bf16;
using strata::f32_to_f16;

// Widens n elements of src (F32/BF16/F16) to f32.
void to_f32(DType dtype, const void* src, float* dst, size_t n);

}  // namespace strata::cpu
