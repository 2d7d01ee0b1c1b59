#include "backend/kv_cache.h"

namespace strata {

KVCache::KVCache(int64_t layers, int64_t rows, int64_t kv_heads, int64_t head_dim, int64_t capacity)
    : rows_(rows), kv_heads_(kv_heads), head_dim_(head_dim), capacity_(capacity),
      data_(static_cast<size_t>(layers * rows * 2 * kv_heads * capacity * head_dim), 0.0f) {}

float* KVCache::slab(int64_t layer, int64_t row, int64_t kind) {
  const int64_t slab_size = kv_heads_ * capacity_ * head_dim_;
  return data_.data() + ((layer * rows_ + row) * 2 + kind) * slab_size;
}

}  // namespace strata
