// The weight store: owns the checkpoint's memory maps and hands out views of
// tensors by their Hugging Face names.
//
// Matrices are either copied into host RAM (huge-page backed, the resident
// tier) or served zero-copy from the file map (aligned copies only when the
// file's offsets are misaligned); 1-D parameters (norm weights, biases) are
// widened once to owned f32 buffers.
// Thread-safety: bind everything before running; afterwards it is read-only.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <string>
#include <vector>

#include "backend/tensor_view.h"
#include "format/safetensors.h"
#include "backend/cpu/thread_pool.h"
#include "runtime/host_arena.h"
#include "models/causal_lm.h"

namespace strata {

class WeightStore : public WeightSource {
 public:
  // copy_to_ram: matrices live in host RAM; otherwise they are read from the
  // memory-mapped files where they lie.
  // The pool (if any) spreads the copies over its threads.
  WeightStore(Checkpoint checkpoint, bool copy_to_ram, ThreadPool* pool = nullptr);

  bool has(const std::string& name) const override { return checkpoint_.find(name) != nullptr; }

  // A [rows, cols] matrix in F32, BF16 or F16. Throws strata::Error naming the
  // tensor when it is missing, has another shape or an unsupported dtype.
  MatrixView matrix(const std::string& name, int64_t rows, int64_t cols) override;

  // A 1-D parameter of `size` elements widened to f32 (owned by the store).
  const float* vector_f32(const std::string& name, int64_t size) override;

  const Checkpoint& checkpoint() const { return checkpoint_; }
  // The memory every matrix handed out lives in, for bandwidth measurements.
  const std::vector<std::span<const uint8_t>>& matrix_ranges() const { return matrix_ranges_; }
  // Bytes of all tensors in the checkpoint.
  uint64_t total_bytes() const;

 private:
  const TensorInfo& expect(const std::string& name, const std::vector<int64_t>& shape) const;

  Checkpoint checkpoint_;
  bool copy_to_ram_;
  ThreadPool* pool_;
  HostArena arena_;
  std::vector<std::span<const uint8_t>> matrix_ranges_;
  // Owned copies: widened vectors and realigned matrices. A deque never moves
  // its elements, so views into them stay valid as more are added.
  std::deque<std::vector<float>> owned_f32_;
  std::deque<std::vector<uint64_t>> owned_aligned_;
};

}  // namespace strata
