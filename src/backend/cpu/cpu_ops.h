// The CPU's op set behind the Ops interface: the functions of cpu/ops.h with
// the model's thread pool. It runs on any host-addressable memory, so the
// sim:N devices use it too.
#pragma once

#include <string>

#include "backend/ops.h"
#include "core/thread_pool.h"

namespace strata {

class CpuOps final : public Ops {
 public:
  explicit CpuOps(ThreadPool& pool, ComputeMode mode = ComputeMode::exact) : pool_(pool), mode_(mode) {}
  // "exact: f32 products (avx512 kernels)", "fast: bf16 products (AVX512-BF16)".
  std::string describe() const;

  std::string_view name() const override { return "cpu"; }
  bool supports(OpKind op, DType weights) const override;
  bool supports(OpKind op, const QuantLayout& layout) const override;
  void matmul(const float* x, size_t n, std::span<const MatmulOutput> outputs) override;
  void rms_norm(const float* x, const float* weight, float weight_offset, size_t rows, size_t dim, float eps,
                float* y) override;
  void layer_norm(const float* x, const float* weight, const float* bias, size_t rows, size_t dim, float eps,
                  float* y) override;
  void embedding(const MatrixView& table, std::span<const int32_t> ids, float* out) override;
  void add_inplace(float* x, const float* y, size_t n) override;
  void glu(Activation act, float* gate, const float* up, size_t n) override;
  void activate(Activation act, float* x, size_t n) override;
  void scale(float* x, float factor, size_t n) override;
  void softcap(float* x, float cap, size_t n) override;
  void rope(const Rope& rope, float* x, int heads, int64_t rows, int64_t tokens, int64_t past,
            std::span<const int64_t> row_starts) override;
  void store_kv(const float* k, const float* v, size_t tokens, int kv_heads, int head_dim, size_t capacity,
                size_t first_slot, float* keys, float* values) override;
  void attention(const AttentionShape& shape, const float* q, size_t tokens, size_t past, size_t start,
                 const float* keys, const float* values, size_t capacity, float* out,
                 std::span<float> scratch) override;
  void copy(float* dst, const float* src, size_t n) override;
  void zero(float* x, size_t n) override;
  void gather_rows(const float* src, size_t cols, std::span<const int32_t> rows, float* dst) override;
  void add_scaled_rows(float* dst, const float* src, size_t cols, std::span<const int32_t> rows,
                       std::span<const float> scales) override;
  void to_host(float* host_dst, const float* src, size_t n) override;
  void from_host(float* dst, const float* host_src, size_t n) override;

 private:
  ThreadPool& pool_;
  ComputeMode mode_;
};

}  // namespace strata
