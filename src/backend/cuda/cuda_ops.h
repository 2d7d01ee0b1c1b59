// The CUDA op set: cuBLAS SGEMM for products of many rows (weights widened to
// f32 a slice at a time), own kernels for everything else, including the
// matrix-vector products of decoding, which read bf16/f16 weights directly.
// Quantized weights are dequantized exactly a slice at a time
// (cuda_quant.h) and go through SGEMM whatever the number of rows.
// Compute is float32 throughout, as on the CPU (no TF32, no half-precision
// accumulation), so results differ from the CPU only in summation order.
// All work is queued on the device's stream.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "backend/ops.h"

namespace strata::cuda {

class CudaOps final : public Ops {
 public:
  CudaOps(int device_index, cudaStream_t stream);
  ~CudaOps() override;
  CudaOps(const CudaOps&) = delete;
  CudaOps& operator=(const CudaOps&) = delete;

  std::string_view name() const override { return "cuda"; }
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

  // Floats of the scratch that holds a slice of widened weights for SGEMM.
  static constexpr size_t kWidenFloats = size_t{4} << 20;

 private:
  void make_current() const;
  void matmul_one(const float* x, size_t n, const MatmulOutput& job);
  // A small host array (ids, row starts) mirrored in device scratch that
  // grows only when a larger step comes, so steady decoding never
  // allocates; copied only when its values change (the row starts of a
  // generation stay the same for every layer and step).
  template <typename T>
  struct Mirrored {
    T* data = nullptr;
    size_t capacity = 0;
    std::vector<T> values;  // what data holds
  };
  template <typename T>
  const T* mirror(std::span<const T> values, Mirrored<T>& array);
  const float* inv_freq_on_device(const Rope& rope);

  int index_;
  cudaStream_t stream_;
  cublasHandle_t blas_ = nullptr;
  float* widened_ = nullptr;  // kWidenFloats
  Mirrored<int32_t> ids_;
  Mirrored<int64_t> starts_;
  Mirrored<int32_t> rows_;   // gather_rows, add_scaled_rows
  Mirrored<float> scales_;   // add_scaled_rows
  std::unordered_map<const Rope*, float*> inv_freq_;  // a model's rope lives as long as the model
};

}  // namespace strata::cuda
