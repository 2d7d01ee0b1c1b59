// Quantized matrices packed by hand from the layouts' descriptions
// (tests/fixtures/README.md, "Quantized fixtures"), for tests that write
// their own pre-quantized checkpoints.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/half.h"
#include "format/safetensors.h"

namespace strata::test {

// A [rows, cols] matrix as integers: codes, the zero and the scale of each
// (row, group), and the group of each column.
struct Matrix {
  int64_t rows = 0, cols = 0, groups = 0;
  int bits = 4;
  std::vector<unsigned> q;            // [rows, cols]
  std::vector<unsigned> zero;         // [rows, groups], the actual zero point
  std::vector<uint16_t> scale;        // [rows, groups], as stored (F16 or BF16 bits)
  std::vector<int32_t> group_of;      // [cols]
  DType scale_dtype = DType::F16;

  float expected(int64_t r, int64_t c) const {
    const size_t g = static_cast<size_t>(r * groups + group_of[static_cast<size_t>(c)]);
    const float s = scale_dtype == DType::BF16 ? bf16_to_f32(scale[g]) : f16_to_f32(scale[g]);
    return s * static_cast<float>(static_cast<int>(q[static_cast<size_t>(r * cols + c)]) - static_cast<int>(zero[g]));
  }
};

inline Matrix random_matrix(int64_t rows, int64_t cols, int bits, int64_t group_size, bool shuffled_groups, uint32_t seed,
                     DType scale_dtype = DType::F16) {
  std::mt19937 rng(seed);
  Matrix m;
  m.rows = rows;
  m.cols = cols;
  m.bits = bits;
  m.scale_dtype = scale_dtype;
  m.groups = group_size > 0 ? (cols + group_size - 1) / group_size : 1;
  const unsigned levels = 1u << bits;
  for (int64_t i = 0; i < rows * cols; ++i) m.q.push_back(rng() % levels);
  for (int64_t i = 0; i < rows * m.groups; ++i) {
    m.zero.push_back(1 + rng() % (levels - 1));  // 1..levels-1: also what GPTQ v1 can store as zero - 1
    const float s = 0.001f + static_cast<float>(rng() % 1000) * 1e-4f;
    m.scale.push_back(scale_dtype == DType::BF16 ? f32_to_bf16(s) : f32_to_f16(s));
  }
  for (int64_t c = 0; c < cols; ++c)
    m.group_of.push_back(static_cast<int32_t>(group_size > 0 ? c / group_size : 0));
  if (shuffled_groups) std::shuffle(m.group_of.begin(), m.group_of.end(), rng);
  return m;
}

// Tensors as a test builds them, named prefix + suffix, then written as one
// safetensors file.
struct Tensors {
  explicit Tensors(std::string name_prefix) : prefix(std::move(name_prefix)) {}

  std::string prefix;
  std::vector<std::string> names;
  std::vector<DType> dtypes;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<std::vector<uint8_t>> data;

  template <typename T>
  void add(const std::string& suffix, DType dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
    names.push_back(prefix + suffix);
    dtypes.push_back(dtype);
    shapes.push_back(std::move(shape));
    data.emplace_back(reinterpret_cast<const uint8_t*>(values.data()),
                      reinterpret_cast<const uint8_t*>(values.data()) + values.size() * sizeof(T));
  }
  void write(const std::filesystem::path& dir, const nlohmann::json& quantization_config) const {
    std::vector<TensorToWrite> out;
    for (size_t i = 0; i < names.size(); ++i) out.push_back({names[i], dtypes[i], shapes[i], data[i]});
    write_safetensors(dir / "model.safetensors", out);
    std::ofstream(dir / "config.json") << nlohmann::json{{"quantization_config", quantization_config}}.dump();
  }
};

// Sets value `slot` (of 32 / bits) of a word.
inline void put(std::vector<int32_t>& words, int64_t index, int bits, int64_t slot, unsigned value) {
  auto w = static_cast<uint32_t>(words[static_cast<size_t>(index)]);
  w |= (value & ((1u << bits) - 1u)) << (bits * slot);
  words[static_cast<size_t>(index)] = static_cast<int32_t>(w);
}

// GPTQ: qweight [in * bits / 32, out] packed along the input; qzeros
// [groups, out * bits / 32] packed along the output, holding zero - 1 (v1)
// or the zero (v2); scales [groups, out]; g_idx [in].
inline Tensors gptq_tensors(const Matrix& m, bool v1, const std::string& prefix) {
  const int64_t vpw = 32 / m.bits;
  std::vector<int32_t> qweight(static_cast<size_t>(m.cols / vpw * m.rows)), qzeros(static_cast<size_t>(m.groups * m.rows / vpw));
  std::vector<uint16_t> scales(static_cast<size_t>(m.groups * m.rows));
  for (int64_t o = 0; o < m.rows; ++o) {
    for (int64_t i = 0; i < m.cols; ++i) put(qweight, (i / vpw) * m.rows + o, m.bits, i % vpw, m.q[static_cast<size_t>(o * m.cols + i)]);
    for (int64_t g = 0; g < m.groups; ++g) {
      const unsigned z = m.zero[static_cast<size_t>(o * m.groups + g)];
      put(qzeros, g * (m.rows / vpw) + o / vpw, m.bits, o % vpw, v1 ? z - 1 : z);
      scales[static_cast<size_t>(g * m.rows + o)] = m.scale[static_cast<size_t>(o * m.groups + g)];
    }
  }
  Tensors t{prefix};
  t.add(".qweight", DType::I32, {m.cols / vpw, m.rows}, qweight);
  t.add(".qzeros", DType::I32, {m.groups, m.rows / vpw}, qzeros);
  t.add(".scales", m.scale_dtype, {m.groups, m.rows}, scales);
  t.add(".g_idx", DType::I32, {m.cols}, m.group_of);
  return t;
}

}  // namespace strata::test
