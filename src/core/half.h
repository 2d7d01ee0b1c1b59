// Conversions between float32 and the 16-bit float formats, one element at
// a time: widening is exact, narrowing rounds to nearest even. Used by the
// kernels, the converters and the quantized formats' scales.
#pragma once

#include <cstdint>

namespace strata {

float bf16_to_f32(uint16_t v);
float f16_to_f32(uint16_t v);
uint16_t f32_to_bf16(float v);  // round to nearest even, NaN kept a NaN
uint16_t f32_to_f16(float v);   // round to nearest even

}  // namespace strata
