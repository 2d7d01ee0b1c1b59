// In-situ quantization (`--quantize int8|int4`): a full-precision matrix's
// rows into strata's own group-wise layout: groups of 32 columns, a float16
// scale each, symmetric (every zero is 2^(bits-1)), codes packed as
// quant_layout.h describes.
//
// Plain round-to-nearest picks scale = max|w| / (2^(bits-1) - 1). The
// default instead tries a few scales per group around that one, and the one
// that maps the group's largest magnitude to -2^(bits-1) (using the level
// symmetric scales leave unused), and keeps the one with the least squared
// error of the dequantized weights; bench/README.md measures what that gains.
#pragma once

#include <cstdint>

#include "quant/quant_layout.h"

namespace strata {

enum class QuantizeMethod : uint8_t { search, round_to_nearest };

struct InSituQuant {
  int bits = 8;  // 8 or 4
  QuantizeMethod method = QuantizeMethod::search;
};

// The layout matrices quantized with `q` are held in; its name says so
// ("int4 g32").
QuantLayout in_situ_layout(const InSituQuant& q);

// Rows [begin, end) of the [rows, cols] f32 matrix `w` (row-major, those
// rows only: w points at row `begin`) quantized into the block at dst
// (quant_bytes(layout, rows, cols) bytes); the planes' padding is written
// with row 0. Rows are independent, so callers may split them over threads.
void quantize_rows(const InSituQuant& q, const QuantLayout& layout, const float* w, int64_t rows, int64_t cols,
                   int64_t begin, int64_t end, uint8_t* dst);

}  // namespace strata
