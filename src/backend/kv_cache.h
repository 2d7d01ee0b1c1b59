// Keys and values of past tokens for every layer of `rows` sequences, in f32:
// per layer [row][kv_head][capacity][head_dim] for keys, then the same for
// values, on the device that executes that layer. Allocated once at the
// session's capacity, so decoding never allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "backend/device.h"

namespace strata {

class KVCache {
 public:
  // layer_devices[i] holds layer i's cache.
  KVCache(std::span<Device* const> layer_devices, int64_t rows, int64_t kv_heads, int64_t head_dim,
          int64_t capacity);

  float* keys(int64_t layer, int64_t row) { return slab(layer, row, 0); }
  float* values(int64_t layer, int64_t row) { return slab(layer, row, 1); }
  int64_t rows() const { return rows_; }
  int64_t capacity() const { return capacity_; }
  // Slots of row r already filled (rows of a ragged step differ), and the
  // most of any row.
  int64_t length(int64_t row) const { return length_[static_cast<size_t>(row)]; }
  void set_length(int64_t row, int64_t length) { length_[static_cast<size_t>(row)] = length; }
  int64_t longest() const;
  // The first slot of row r that holds a real token: rows of a batch are
  // left-padded to one length, and a row's positions count from here.
  int64_t row_start(int64_t row) const { return row_start_[static_cast<size_t>(row)]; }
  void set_row_start(int64_t row, int64_t start) { row_start_[static_cast<size_t>(row)] = start; }
  std::span<const int64_t> row_starts() const { return row_start_; }

  // Bytes one layer's cache takes for these dimensions.
  static uint64_t layer_bytes(int64_t rows, int64_t kv_heads, int64_t head_dim, int64_t capacity);

 private:
  float* slab(int64_t layer, int64_t row, int64_t kind);

  int64_t rows_, kv_heads_, head_dim_, capacity_;
  std::vector<int64_t> length_;
  std::vector<int64_t> row_start_;
  std::vector<DeviceBuffer> layers_;
};

}  // namespace strata
