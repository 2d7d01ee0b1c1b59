#include "backend/cpu/cpu_ops.h"

#include <algorithm>

#include "backend/cpu/kernels.h"
#include "backend/cpu/ops.h"

namespace strata {

bool CpuOps::supports(OpKind op, DType weights) const {
  // Matrix weights are widened by the kernels of kernels.h (F32, BF16, F16);
  // every other op takes f32 activations only and ignores the dtype.
  if (op == OpKind::matmul || op == OpKind::embedding)
    return weights == DType::F32 || weights == DType::BF16 || weights == DType::F16;
  return true;
}

bool CpuOps::supports(OpKind op, const QuantLayout&) const {
  // Every layout is dequantized exactly into f32 rows (quant/quant_layout.h).
  return op == OpKind::matmul || op == OpKind::embedding;
}

void CpuOps::matmul(const float* x, size_t n, std::span<const MatmulOutput> outputs) {
  cpu::matmul(pool_, x, n, outputs, mode_);
}

void CpuOps::rms_norm(const float* x, const float* weight, float weight_offset, size_t rows, size_t dim, float eps,
                      float* y) {
  cpu::rms_norm(x, weight, weight_offset, rows, dim, eps, y);
}

void CpuOps::layer_norm(const float* x, const float* weight, const float* bias, size_t rows, size_t dim, float eps,
                        float* y) {
  cpu::layer_norm(x, weight, bias, rows, dim, eps, y);
}

void CpuOps::embedding(const MatrixView& table, std::span<const int32_t> ids, float* out) {
  cpu::embedding(table, ids, out);
}

void CpuOps::add_inplace(float* x, const float* y, size_t n) { cpu::add_inplace(x, y, n); }

void CpuOps::glu(Activation act, float* gate, const float* up, size_t n) { cpu::glu(act, gate, up, n); }

void CpuOps::activate(Activation act, float* x, size_t n) { cpu::activate(act, x, n); }

void CpuOps::scale(float* x, float factor, size_t n) { cpu::scale(x, factor, n); }

void CpuOps::softcap(float* x, float cap, size_t n) { cpu::softcap(x, cap, n); }

void CpuOps::rope(const Rope& rope, float* x, int heads, int64_t rows, int64_t tokens, int64_t past,
                  std::span<const int64_t> row_starts) {
  const size_t stride = static_cast<size_t>(heads) * static_cast<size_t>(rope.head_dim());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t pos = std::max<int64_t>(past + t - row_starts[static_cast<size_t>(r)], 0);
      rope.apply(x + static_cast<size_t>(r * tokens + t) * stride, heads, pos);
    }
}

void CpuOps::store_kv(const float* k, const float* v, size_t tokens, int kv_heads, int head_dim, size_t capacity,
                      size_t first_slot, float* keys, float* values) {
  const size_t d = static_cast<size_t>(head_dim);
  const size_t kv_dim = static_cast<size_t>(kv_heads) * d;
  for (size_t t = 0; t < tokens; ++t)
    for (size_t h = 0; h < static_cast<size_t>(kv_heads); ++h) {
      const size_t src = t * kv_dim + h * d;
      const size_t dst = (h * capacity + first_slot + t) * d;
      std::copy_n(k + src, d, keys + dst);
      std::copy_n(v + src, d, values + dst);
    }
}

void CpuOps::attention(const AttentionShape& shape, const float* q, size_t tokens, size_t past, size_t start,
                       const float* keys, const float* values, size_t capacity, float* out,
                       std::span<float> scratch) {
  cpu::attention(pool_, shape, q, tokens, past, start, keys, values, capacity, out, scratch);
}

void CpuOps::copy(float* dst, const float* src, size_t n) { std::copy_n(src, n, dst); }

void CpuOps::zero(float* x, size_t n) { std::fill_n(x, n, 0.0f); }

void CpuOps::gather_rows(const float* src, size_t cols, std::span<const int32_t> rows, float* dst) {
  for (size_t i = 0; i < rows.size(); ++i) std::copy_n(src + static_cast<size_t>(rows[i]) * cols, cols, dst + i * cols);
}

void CpuOps::add_scaled_rows(float* dst, const float* src, size_t cols, std::span<const int32_t> rows,
                             std::span<const float> scales) {
  for (size_t i = 0; i < rows.size(); ++i) {
    float* out = dst + static_cast<size_t>(rows[i]) * cols;
    const float* in = src + i * cols;
    const float s = scales[i];
    for (size_t c = 0; c < cols; ++c) {
      const float product = in[c] * s;
      out[c] += product;
    }
  }
}

void CpuOps::to_host(float* host_dst, const float* src, size_t n) { std::copy_n(src, n, host_dst); }
void CpuOps::from_host(float* dst, const float* host_src, size_t n) { std::copy_n(host_src, n, dst); }

std::string CpuOps::describe() const {
  const std::string kernels = cpu::best_kernels().name;
  if (mode_ == ComputeMode::exact) return "exact: weights widened to f32, f32 products (" + kernels + " kernels)";
  const std::string quantized = cpu::best_kernels().dot_quant
                                    ? "; int8/int4 weights times int8-rounded activations, integer dot products"
                                    : "";
  return (cpu::fast_bf16_kernels().tile
              ? "fast: bf16 weights times bf16-rounded activations, f32 sums (AVX512-BF16 dot products"
              : "fast: bf16 weights times bf16-rounded activations, f32 sums (" + kernels +
                    " kernels widening bf16: no AVX512-BF16 here") +
         quantized + ")";
}

}  // namespace strata
