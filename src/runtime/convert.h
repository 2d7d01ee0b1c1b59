// Converting weights between float dtypes when they are laid out in a tier:
// widening is exact, narrowing rounds to nearest even (as torch's .to() does).
#pragma once

#include <cstddef>

#include "backend/cpu/thread_pool.h"
#include "strata/dtype.h"

namespace strata {

// Converts n elements of `from` at src into `to` at dst (F32, BF16 or F16).
// src may be unaligned (safetensors offsets need not be); dst must be aligned.
// The pool, if given, splits large conversions over its threads.
void convert_elements(DType from, const void* src, DType to, void* dst, size_t n, ThreadPool* pool = nullptr);

}  // namespace strata
