#include "backend/cpu/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "strata/error.h"

namespace strata::cpu {

TileFn MatmulKernels::tile_for(DType dtype) const {
  switch (dtype) {
    case DType::F32: return tile_f32;
    case DType::BF16: return tile_bf16;
    case DType::F16: return tile_f16;
    default: throw Error("matrix weights must be F32, BF16 or F16, not " + std::string(dtype_name(dtype)));
  }
}

GemmFn MatmulKernels::gemm_for(DType dtype) const {
  switch (dtype) {
    case DType::F32: return gemm_f32;
    case DType::BF16: return gemm_bf16;
    case DType::F16: return gemm_f16;
    default: return nullptr;
  }
}

bool cpu_supports_avx2() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

bool cpu_supports_avx512() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

bool cpu_supports_avx512_bf16() {
#if defined(__x86_64__)
  return cpu_supports_avx512() && __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

namespace {

// The set force_kernels() asked for, else null: the best the CPU runs.
const MatmulKernels* forced = nullptr;

const MatmulKernels& choose_kernels() {
  if (forced) return *forced;
  if (cpu_supports_avx512()) return avx512_kernels();
  if (cpu_supports_avx2()) return avx2_kernels();
  return generic_kernels();
}

}  // namespace

void force_kernels(std::string_view name) {
  if (name == "generic") {
    forced = &generic_kernels();
  } else if (name == "avx2") {
    if (!cpu_supports_avx2()) throw Error("the avx2 kernels were asked for, but this CPU lacks AVX2/FMA/F16C");
    forced = &avx2_kernels();
  } else if (name == "avx512") {
    if (!cpu_supports_avx512()) throw Error("the avx512 kernels were asked for, but this CPU lacks AVX-512 F/BW/VL/DQ");
    forced = &avx512_kernels();
  } else {
    throw Error("unknown kernel set '" + std::string(name) + "'", "", "", "use generic, avx2 or avx512");
  }
}

const MatmulKernels& best_kernels() {
  // Chosen once, at the first product: the CPU does not change under a
  // running process.
  static const MatmulKernels& chosen = choose_kernels();
  return chosen;
}

FastBf16Kernels fast_bf16_kernels() {
  static const FastBf16Kernels chosen =
      &best_kernels() == &avx512_kernels() && cpu_supports_avx512_bf16() ? avx512_bf16_kernels() : FastBf16Kernels{};
  return chosen;
}

void to_f32(DType dtype, const void* src, float* dst, size_t n) {
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case DType::BF16: {
      const auto* p = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(p[i]);
      return;
    }
    case DType::F16: {
      const auto* p = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(p[i]);
      return;
    }
    default:
      throw Error("cannot convert " + std::string(dtype_name(dtype)) + " to F32");
  }
}

bool quant_tile_supports(const QuantLayout& layout) {
  return layout.kind == QuantKind::int_group && !layout.group_index && layout.group_size % 8 == 0 &&
         (layout.bits == 4 || layout.bits == 8);
}

bool quant_dot_supports(const QuantLayout& layout, int64_t cols) {
  return layout.kind == QuantKind::int_group && !layout.group_index && !layout.stored_zeros &&
         layout.group_size == 32 && layout.scale_dtype == DType::F16 && (layout.bits == 4 || layout.bits == 8) &&
         cols % 32 == 0;
}

void quantize_activations(const float* x, size_t n, int8_t* q, float* d, int32_t* s) {
  for (size_t b = 0; b < n / 32; ++b) {
    const float* xb = x + b * 32;
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xb[i]));
    d[b] = amax / 127.0f;
    const float inverse = amax > 0.0f ? 127.0f / amax : 0.0f;
    s[b] = 0;
    for (int i = 0; i < 32; ++i) {
      q[b * 32 + static_cast<size_t>(i)] = static_cast<int8_t>(std::nearbyint(xb[i] * inverse));
      s[b] += q[b * 32 + static_cast<size_t>(i)];
    }
  }
}

void order_activations_4bit(const int8_t* q, size_t n, int8_t* out) {
  const size_t groups = n / 32;
  for (size_t g = 0; g < groups; g += 2) {
    const bool pair = g + 1 < groups;
    const size_t half = pair ? 32 : 16;  // offset of the odd columns
    for (size_t member = 0; member < (pair ? 2u : 1u); ++member) {
      const int8_t* src = q + (g + member) * 32;
      int8_t* dst = out + g * 32 + member * 16;
      for (size_t i = 0; i < 16; ++i) {
        dst[i] = src[2 * i];
        dst[half + i] = src[2 * i + 1];
      }
    }
  }
}

}  // namespace strata::cpu
