// Portable tiles: plain loops, for CPUs without AVX2 and as a reference.
#include "backend/cpu/kernels.h"

namespace strata::cpu {
namespace {

struct LoadF32 {
  static float one(const void* p, size_t at) { return static_cast<const float*>(p)[at]; }
};
struct LoadBF16 {
  static float one(const void* p, size_t at) { return bf16_to_f32(static_cast<const uint16_t*>(p)[at]); }
};
struct LoadF16 {
  static float one(const void* p, size_t at) { return f16_to_f32(static_cast<const uint16_t*>(p)[at]); }
};

template <typename Load, typename W>
void tile(const float* x, size_t x_stride, int nx, const void* w_void, size_t w_stride, int nw,
          size_t k, float* out, size_t out_stride) {
  const W* w = static_cast<const W*>(w_void);
  for (int i = 0; i < nx; ++i) {
    for (int j = 0; j < nw; ++j) {
      float sum = 0.0f;
      for (size_t t = 0; t < k; ++t) sum += x[i * x_stride + t] * Load::one(w + j * w_stride, t);
      out[i * out_stride + j] = sum;
    }
  }
}

}  // namespace

const MatmulKernels& generic_kernels() {
  static const MatmulKernels kernels{"generic", 4, 4, 4, tile<LoadF32, float>, tile<LoadBF16, uint16_t>,
                                     tile<LoadF16, uint16_t>};
  return kernels;
}

}  // namespace strata::cpu
