#include "runtime/convert.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/kernels.h"
#include "strata/error.h"

namespace strata {
namespace {

// Elements per piece: large enough to amortise a thread hand-off, small
// enough that a piece's aligned staging stays in cache.
constexpr size_t kPiece = size_t{1} << 14;

float load(DType from, const uint8_t* src, size_t i) {
  if (from == DType::F32) {
    float v;
    std::memcpy(&v, src + i * 4, 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, src + i * 2, 2);
  return from == DType::BF16 ? cpu::bf16_to_f32(h) : cpu::f16_to_f32(h);
}

void store(DType to, void* dst, size_t i, float v) {
  if (to == DType::F32)
    static_cast<float*>(dst)[i] = v;
  else
    static_cast<uint16_t*>(dst)[i] = to == DType::BF16 ? cpu::f32_to_bf16(v) : cpu::f32_to_f16(v);
}

void convert_range(DType from, const uint8_t* src, DType to, void* dst, size_t begin, size_t end) {
  if (from == to) {
    const size_t size = dtype_size(from);
    std::memcpy(static_cast<uint8_t*>(dst) + begin * size, src + begin * size, (end - begin) * size);
    return;
  }
  for (size_t i = begin; i < end; ++i) store(to, dst, i, load(from, src, i));
}

bool convertible(DType d) { return d == DType::F32 || d == DType::BF16 || d == DType::F16; }

}  // namespace

void convert_elements(DType from, const void* src, DType to, void* dst, size_t n, ThreadPool* pool) {
  if (!convertible(from) || !convertible(to))
    throw Error("cannot convert " + std::string(dtype_name(from)) + " to " + std::string(dtype_name(to)));
  const auto* bytes = static_cast<const uint8_t*>(src);
  auto piece = [&](size_t begin, size_t end, int) { convert_range(from, bytes, to, dst, begin, end); };
  if (pool && n > kPiece)
    pool->parallel_for(n, kPiece, piece);
  else
    piece(0, n, 0);
}

void convert_transposed_rows(DType from, const void* src, int64_t rows, int64_t cols, DType to, void* dst,
                             int64_t row_begin, int64_t row_end, ThreadPool* pool) {
  if (!convertible(from) || !convertible(to))
    throw Error("cannot convert " + std::string(dtype_name(from)) + " to " + std::string(dtype_name(to)));
  const auto* bytes = static_cast<const uint8_t*>(src);
  const size_t n = static_cast<size_t>(rows);
  auto out_rows = [&](size_t begin, size_t end, int) {
    for (size_t j = begin; j < end; ++j) {
      const size_t column = static_cast<size_t>(row_begin) + j;
      for (size_t i = 0; i < n; ++i)
        store(to, dst, j * n + i, load(from, bytes, i * static_cast<size_t>(cols) + column));
    }
  };
  const auto count = static_cast<size_t>(row_end - row_begin);
  if (pool && count * n > kPiece)
    pool->parallel_for(count, std::max<size_t>(1, kPiece / std::max<size_t>(n, 1)), out_rows);
  else
    out_rows(0, count, 0);
}

namespace {

size_t element_count(std::span<const int64_t> shape) {
  size_t n = 1;
  for (const int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

}  // namespace

void convert_tensor(const SourceTensor& src, DType to, void* dst, ThreadPool* pool) {
  if (src.transposed)
    convert_transposed_rows(src.dtype, src.data, src.shape[0], src.shape[1], to, dst, 0, src.shape[1], pool);
  else
    convert_elements(src.dtype, src.data, to, dst, element_count(src.shape), pool);
}

void convert_in_pieces(const SourceTensor& src, DType to, size_t piece_elements, ThreadPool* pool,
                       const std::function<void(size_t offset, std::span<const uint8_t> piece)>& sink) {
  const size_t n = element_count(src.shape), to_size = dtype_size(to);
  std::vector<uint8_t> piece;
  if (src.transposed) {
    // Rows of the result are columns of the stored matrix.
    const int64_t rows = src.shape[1], cols = src.shape[0];
    const int64_t piece_rows = std::max<int64_t>(1, static_cast<int64_t>(piece_elements) / std::max<int64_t>(cols, 1));
    for (int64_t at = 0; at < rows; at += piece_rows) {
      const int64_t end = std::min(rows, at + piece_rows);
      piece.resize(static_cast<size_t>((end - at) * cols) * to_size);
      convert_transposed_rows(src.dtype, src.data, cols, rows, to, piece.data(), at, end, pool);
      sink(static_cast<size_t>(at * cols) * to_size, piece);
    }
    return;
  }
  const size_t from_size = dtype_size(src.dtype);
  for (size_t at = 0; at < n; at += piece_elements) {
    const size_t count = std::min(piece_elements, n - at);
    piece.resize(count * to_size);
    convert_elements(src.dtype, static_cast<const uint8_t*>(src.data) + at * from_size, to, piece.data(), count, pool);
    sink(at * to_size, piece);
  }
}

bool all_finite(DType dtype, const void* data, size_t n) {
  // An element is NaN or Inf when its exponent bits are all ones.
  const auto* bytes = static_cast<const uint8_t*>(data);
  if (dtype == DType::F32) {
    for (size_t i = 0; i < n; ++i) {
      uint32_t v;
      std::memcpy(&v, bytes + i * 4, 4);
      if ((v & 0x7f800000u) == 0x7f800000u) return false;
    }
    return true;
  }
  const uint16_t exponent = dtype == DType::BF16 ? 0x7f80 : 0x7c00;
  for (size_t i = 0; i < n; ++i) {
    uint16_t v;
    std::memcpy(&v, bytes + i * 2, 2);
    if ((v & exponent) == exponent) return false;
  }
  return true;
}

void write_to_device(const SourceTensor& src, DType to, size_t bytes, uint8_t* dst, Device& home, const Device& host,
                     ThreadPool* pool) {
  if (&home == &host) {
    convert_tensor(src, to, dst, pool);
  } else if (src.dtype == to && !src.transposed) {
    home.copy_in(dst, src.data, bytes);
  } else {
    // Elements converted per piece: the host holds one piece at a time.
    constexpr size_t kPiece = size_t{1} << 20;
    convert_in_pieces(src, to, kPiece, pool, [&](size_t offset, std::span<const uint8_t> piece) {
      home.copy_in(dst + offset, piece.data(), piece.size());
    });
  }
}

namespace {

// Rows [begin, end) split over the pool when there are enough elements.
void for_rows(size_t rows, size_t cols, ThreadPool* pool, const std::function<void(size_t, size_t)>& work) {
  const size_t grain = std::max<size_t>(1, kPiece / std::max<size_t>(cols, 1));
  if (pool && rows * cols > kPiece)
    pool->parallel_for(rows, grain, [&](size_t begin, size_t end, int) { work(begin, end); });
  else if (rows > 0)
    work(0, rows);
}

}  // namespace

void make_quantized(const Checkpoint& checkpoint, const QuantizedSource& source, uint8_t* dst, ThreadPool* pool,
                    const std::function<void(uint64_t)>& progress) {
  const auto rows = static_cast<size_t>(source.rows), cols = static_cast<size_t>(source.cols);
  if (source.scheme) {
    const StoredQuantized stored = stored_quantized(checkpoint, source.stored);
    // Row 0 writes the planes' padding; rows are independent.
    for_rows(rows, cols, pool, [&](size_t begin, size_t end) {
      repack_rows(source.scheme->method, *source.layout, stored, source.rows, source.cols,
                  static_cast<int64_t>(begin), static_cast<int64_t>(end), dst);
    });
    if (progress) progress(source.stored.stored_bytes);
    return;
  }
  // Widened to f32 a few rows at a time (the host never holds the whole
  // float matrix), then quantized.
  const auto src = checkpoint.data(*source.plain);
  const size_t piece_rows = std::max<size_t>(1, (size_t{1} << 20) / std::max<size_t>(cols, 1));
  const size_t stored_row = source.plain->nbytes / std::max<size_t>(rows, 1);
  convert_in_pieces({source.plain->dtype, src.data(), source.plain->shape, source.transposed}, DType::F32,
                    piece_rows * cols, pool, [&](size_t offset, std::span<const uint8_t> piece) {
                      const size_t first = offset / (cols * sizeof(float)), count = piece.size() / (cols * sizeof(float));
                      const auto* w = reinterpret_cast<const float*>(piece.data());
                      for_rows(count, cols, pool, [&](size_t begin, size_t end) {
                        quantize_rows(source.in_situ, *source.layout, w + begin * cols, source.rows, source.cols,
                                      static_cast<int64_t>(first + begin), static_cast<int64_t>(first + end), dst);
                      });
                      if (progress) progress((first + count) * stored_row);
                    });
}

}  // namespace strata
