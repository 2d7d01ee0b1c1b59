#include "runtime/weight_store.h"

#include <cstring>

#include "backend/cpu/kernels.h"
#include "strata/error.h"

namespace strata {

WeightStore::WeightStore(Checkpoint checkpoint, bool copy_to_ram, ThreadPool* pool)
    : checkpoint_(std::move(checkpoint)), copy_to_ram_(copy_to_ram), pool_(pool) {
  // One mapping for all copies: allocate() rounds each tensor up to 64 bytes.
  if (copy_to_ram_) arena_.reserve(static_cast<size_t>(total_bytes()) + 64 * checkpoint_.tensors().size());
}

uint64_t WeightStore::total_bytes() const {
  uint64_t total = 0;
  for (const auto& t : checkpoint_.tensors()) total += t.nbytes;
  return total;
}

const TensorInfo& WeightStore::expect(const std::string& name, const std::vector<int64_t>& shape) const {
  const TensorInfo& info = checkpoint_.get(name);
  if (info.shape != shape)
    throw Error("shape " + shape_string(info.shape) + " does not match config.json (expected " +
                    shape_string(shape) + ")",
                checkpoint_.dir().string(), name, "config.json and weights disagree");
  return info;
}

MatrixView WeightStore::matrix(const std::string& name, int64_t rows, int64_t cols) {
  const TensorInfo& info = expect(name, {rows, cols});
  if (info.dtype != DType::F32 && info.dtype != DType::BF16 && info.dtype != DType::F16)
    throw Error("weights stored as " + std::string(dtype_name(info.dtype)) + " are not supported",
                checkpoint_.dir().string(), name, "strata reads F32, BF16 and F16 weights");
  const auto bytes = checkpoint_.data(info);
  const void* data = bytes.data();
  if (copy_to_ram_) {
    auto* copy = static_cast<uint8_t*>(arena_.allocate(bytes.size()));
    // Page faults on both sides dominate; spread them over the threads.
    auto copy_range = [&](size_t begin, size_t end, int) {
      std::memcpy(copy + begin, bytes.data() + begin, end - begin);
    };
    if (pool_)
      pool_->parallel_for(bytes.size(), size_t{1} << 20, copy_range);
    else
      copy_range(0, bytes.size(), 0);
    data = copy;
  } else if (reinterpret_cast<uintptr_t>(data) % dtype_size(info.dtype) != 0) {
    // Element reads must be aligned; a file whose offsets are not gets a copy.
    auto& copy = owned_aligned_.emplace_back((bytes.size() + 7) / 8);
    std::memcpy(copy.data(), bytes.data(), bytes.size());
    data = copy.data();
  }
  matrix_ranges_.emplace_back(static_cast<const uint8_t*>(data), bytes.size());
  return MatrixView{info.dtype, data, rows, cols};
}

const float* WeightStore::vector_f32(const std::string& name, int64_t size) {
  const TensorInfo& info = expect(name, {size});
  if (!is_float(info.dtype) || info.dtype == DType::F64)
    throw Error("parameter stored as " + std::string(dtype_name(info.dtype)) + " is not supported",
                checkpoint_.dir().string(), name, "strata reads F32, BF16 and F16 weights");
  auto& out = owned_f32_.emplace_back(static_cast<size_t>(size));
  // to_f32 reads through memcpy-safe paths for F32 and element loads for
  // 16-bit types; copy first so alignment never matters.
  const auto bytes = checkpoint_.data(info);
  std::vector<uint16_t> aligned16;
  const void* src = bytes.data();
  if (info.dtype != DType::F32) {
    aligned16.resize(static_cast<size_t>(size));
    std::memcpy(aligned16.data(), bytes.data(), bytes.size());
    src = aligned16.data();
  }
  cpu::to_f32(info.dtype, src, out.data(), static_cast<size_t>(size));
  return out.data();
}

}  // namespace strata
