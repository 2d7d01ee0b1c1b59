#include "backend/kv_cache.h"

#include <algorithm>
#include <string>

namespace strata {

uint64_t KVCache::layer_bytes(int64_t rows, int64_t kv_heads, int64_t head_dim, int64_t capacity) {
  return static_cast<uint64_t>(2 * rows * kv_heads * capacity * head_dim) * sizeof(float);
}

KVCache::KVCache(std::span<Device* const> layer_devices, int64_t rows, int64_t kv_heads, int64_t head_dim,
                 int64_t capacity)
    : rows_(rows), kv_heads_(kv_heads), head_dim_(head_dim), capacity_(capacity),
      length_(static_cast<size_t>(rows), 0), row_start_(static_cast<size_t>(rows), 0) {
  const size_t bytes = layer_bytes(rows, kv_heads, head_dim, capacity);
  layers_.reserve(layer_devices.size());
  for (size_t i = 0; i < layer_devices.size(); ++i)
    layers_.emplace_back(*layer_devices[i], bytes, "the KV cache of layer " + std::to_string(i));
}

int64_t KVCache::longest() const { return *std::max_element(length_.begin(), length_.end()); }

float* KVCache::slab(int64_t layer, int64_t row, int64_t kind) {
  const int64_t slab_size = kv_heads_ * capacity_ * head_dim_;
  return layers_[static_cast<size_t>(layer)].floats() + (row * 2 + kind) * slab_size;
}

}  // namespace strata
