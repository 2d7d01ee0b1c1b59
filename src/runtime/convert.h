// Converting weights between float dtypes when they are laid out in a tier:
// widening is exact, narrowing rounds to nearest even (as torch's .to() does).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

#include "backend/device.h"
#include "core/thread_pool.h"
#include "format/quantized_checkpoint.h"
#include "quant/quantize.h"
#include "strata/dtype.h"

namespace strata {

// Converts n elements of `from` at src into `to` at dst (F32, BF16 or F16).
// src may be unaligned (safetensors offsets need not be); dst must be aligned.
// The pool, if given, splits large conversions over its threads.
void convert_elements(DType from, const void* src, DType to, void* dst, size_t n, ThreadPool* pool = nullptr);

// Whether all n elements (F32, BF16 or F16) are finite: no NaN, no Inf.
bool all_finite(DType dtype, const void* data, size_t n);

// Rows [row_begin, row_end) of the transpose of src, a [rows, cols] matrix
// of `from`, written to dst as `to`: row j of the result is column j of src.
// GPT-2's Conv1D weights are stored [in, out]; the runtime holds [out, in].
void convert_transposed_rows(DType from, const void* src, int64_t rows, int64_t cols, DType to, void* dst,
                             int64_t row_begin, int64_t row_end, ThreadPool* pool = nullptr);

// A stored tensor as a tier holds it: its elements converted to `to`, and
// with `transposed` a [rows, cols] matrix held as its transpose.
struct SourceTensor {
  DType dtype;
  const void* data;
  std::span<const int64_t> shape;  // as stored
  bool transposed = false;
};

// The whole tensor converted into dst.
void convert_tensor(const SourceTensor& src, DType to, void* dst, ThreadPool* pool);

// The same a piece at a time, so the host never holds a whole converted
// tensor: sink(offset, piece) gets consecutive pieces of the result (offset
// in bytes), each of about piece_elements elements (whole rows of a
// transpose).
void convert_in_pieces(const SourceTensor& src, DType to, size_t piece_elements, ThreadPool* pool,
                       const std::function<void(size_t offset, std::span<const uint8_t> piece)>& sink);

// Writes src as `to` at dst in home's memory: the host converts into its own
// memory directly; another device gets the stored bytes copied in, or
// converted pieces, so the host never holds a whole converted tensor.
// `bytes` is the size of the result.
void write_to_device(const SourceTensor& src, DType to, size_t bytes, uint8_t* dst, Device& home, const Device& host,
                     ThreadPool* pool);

// How a matrix held quantized is made: repacked from a pre-quantized
// checkpoint's tensors, or quantized from a float one (--quantize).
struct QuantizedSource {
  const QuantLayout* layout = nullptr;  // as held
  int64_t rows = 0, cols = 0;
  const QuantScheme* scheme = nullptr;  // pre-quantized: the stored method...
  QuantizedTensors stored;              // ...and tensors
  const TensorInfo* plain = nullptr;    // in-situ: the float tensor
  bool transposed = false;              // in-situ: stored [cols, rows] (GPT-2's Conv1D)
  InSituQuant in_situ;
};

// Writes the matrix's held bytes (quant_bytes(*layout, rows, cols)) at dst;
// the pool, if given, splits the rows over its threads. progress, if given,
// is told the bytes of source tensors read so far.
void make_quantized(const Checkpoint& checkpoint, const QuantizedSource& source, uint8_t* dst, ThreadPool* pool,
                    const std::function<void(uint64_t)>& progress = {});

}  // namespace strata
