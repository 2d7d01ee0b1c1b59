// Element types of tensors, named as safetensors names them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace strata {

// F8_E4M3 holds FP8 checkpoints' weights (quant/quant_layout.h); it is not a
// compute dtype, and is_float() is false for it.
enum class DType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3 };

// Bytes per element.
size_t dtype_size(DType dtype);

// The safetensors spelling: "F32", "BF16", "I64", ...
std::string_view dtype_name(DType dtype);

// Parses the safetensors spelling; nullopt for anything unknown.
std::optional<DType> parse_dtype(std::string_view name);

bool is_float(DType dtype);

}  // namespace strata
