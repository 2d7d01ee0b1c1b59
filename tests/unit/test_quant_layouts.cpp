// Every quantized layout strata reads, packed here by hand from the layouts'
// descriptions (tests/fixtures/README.md, "Quantized fixtures"), then read
// back through the checkpoint, the repack and the exact dequantization: each
// element must equal scale * (q - zero) in float32, bit for bit. The shared
// fixtures cover one case per method; these cover the variants they do not
// (asymmetric zeros, desc_act's g_idx, one group per row, 8-bit, GPTQ v2,
// FP8 shapes that are not multiples of the block).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "core/half.h"
#include "format/quantized_checkpoint.h"
#include "format/safetensors.h"
#include "quant/quant_layout.h"
#include "runtime/convert.h"
#include "quant_packing.h"
#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using test::gptq_tensors;
using test::Matrix;
using test::put;
using test::random_matrix;
using test::Tensors;

constexpr const char* kPrefix = "model.layers.0.mlp.up_proj";

// AWQ GEMM: qweight [in, out / 8] and qzeros [in / g, out / 8] packed along
// the output, nibble k of a word holding column 8 * (o / 8) + order[k].
Tensors awq_tensors(const Matrix& m) {
  constexpr int kOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  std::vector<int32_t> qweight(static_cast<size_t>(m.cols * m.rows / 8)), qzeros(static_cast<size_t>(m.groups * m.rows / 8));
  std::vector<uint16_t> scales(static_cast<size_t>(m.groups * m.rows));
  for (int64_t word = 0; word < m.rows / 8; ++word)
    for (int k = 0; k < 8; ++k) {
      const int64_t o = 8 * word + kOrder[k];
      for (int64_t i = 0; i < m.cols; ++i) put(qweight, i * (m.rows / 8) + word, 4, k, m.q[static_cast<size_t>(o * m.cols + i)]);
      for (int64_t g = 0; g < m.groups; ++g) put(qzeros, g * (m.rows / 8) + word, 4, k, m.zero[static_cast<size_t>(o * m.groups + g)]);
    }
  for (int64_t o = 0; o < m.rows; ++o)
    for (int64_t g = 0; g < m.groups; ++g)
      scales[static_cast<size_t>(g * m.rows + o)] = m.scale[static_cast<size_t>(o * m.groups + g)];
  Tensors t{kPrefix};
  t.add(".qweight", DType::I32, {m.cols, m.rows / 8}, qweight);
  t.add(".qzeros", DType::I32, {m.groups, m.rows / 8}, qzeros);
  t.add(".scales", m.scale_dtype, {m.groups, m.rows}, scales);
  return t;
}

// compressed-tensors pack-quantized: weight_packed [out, ceil(in / vpw)]
// along the input, values stored + 2^(bits-1); weight_scale [out, groups];
// weight_zero_point [ceil(out / vpw), groups] along the output, + 2^(bits-1).
Tensors ct_tensors(const Matrix& m, bool symmetric) {
  const int64_t vpw = 32 / m.bits, words = (m.cols + vpw - 1) / vpw;
  std::vector<int32_t> packed(static_cast<size_t>(m.rows * words));
  std::vector<int32_t> zero_point(static_cast<size_t>((m.rows + vpw - 1) / vpw * m.groups));
  for (int64_t o = 0; o < m.rows; ++o) {
    for (int64_t i = 0; i < m.cols; ++i) put(packed, o * words + i / vpw, m.bits, i % vpw, m.q[static_cast<size_t>(o * m.cols + i)]);
    for (int64_t g = 0; g < m.groups; ++g)
      put(zero_point, (o / vpw) * m.groups + g, m.bits, o % vpw, m.zero[static_cast<size_t>(o * m.groups + g)]);
  }
  Tensors t{kPrefix};
  t.add(".weight_packed", DType::I32, {m.rows, words}, packed);
  t.add(".weight_scale", m.scale_dtype, {m.rows, m.groups}, m.scale);
  t.add(".weight_shape", DType::I64, {2}, std::vector<int64_t>{m.rows, m.cols});
  if (!symmetric) t.add(".weight_zero_point", DType::I32, {(m.rows + vpw - 1) / vpw, m.groups}, zero_point);
  return t;
}

Json ct_config(int bits, int64_t group_size, bool symmetric) {
  Json weights = {{"num_bits", bits}, {"type", "int"}, {"symmetric", symmetric},
                  {"strategy", group_size > 0 ? "group" : "channel"}, {"group_size", group_size > 0 ? Json(group_size) : Json()}};
  return {{"quant_method", "compressed-tensors"}, {"format", "pack-quantized"},
          {"config_groups", {{"group_0", {{"targets", {"Linear"}}, {"weights", weights}, {"input_activations", nullptr}}}}}};
}

// The matrix read back as strata holds it, dequantized.
std::vector<float> read_back(const fs::path& dir, int64_t rows, int64_t cols, std::string* layout_name = nullptr) {
  const Checkpoint checkpoint = Checkpoint::open(dir);
  const auto scheme = read_quant_scheme(dir, checkpoint);
  EXPECT_TRUE(scheme.has_value());
  if (!scheme) return {};
  const auto tensors = find_quantized(checkpoint, *scheme, std::string(kPrefix) + ".weight", rows, cols);
  EXPECT_TRUE(tensors.has_value());
  if (!tensors) return {};
  std::vector<uint8_t> held(quant_bytes(scheme->layout, rows, cols), 0xAB);
  QuantizedSource source;
  source.layout = &scheme->layout;
  source.rows = rows;
  source.cols = cols;
  source.scheme = &*scheme;
  source.stored = *tensors;
  make_quantized(checkpoint, source, held.data(), nullptr);
  std::vector<float> out(static_cast<size_t>(rows * cols));
  // Two calls, so a row range that does not start at 0 is read too.
  dequantize_rows(scheme->layout, held.data(), rows, cols, 0, rows / 2, out.data());
  dequantize_rows(scheme->layout, held.data(), rows, cols, rows / 2, rows, out.data() + (rows / 2) * cols);
  if (layout_name) *layout_name = scheme->layout.name;
  return out;
}

void expect_bitwise(const Matrix& m, const std::vector<float>& got) {
  ASSERT_EQ(got.size(), static_cast<size_t>(m.rows * m.cols));
  int mismatches = 0;
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) {
      const float want = m.expected(r, c), have = got[static_cast<size_t>(r * m.cols + c)];
      if (std::memcmp(&want, &have, sizeof want) != 0 && mismatches++ < 5)
        ADD_FAILURE() << "W[" << r << ", " << c << "] = " << have << ", expected " << want;
    }
  EXPECT_EQ(mismatches, 0);
}

struct GptqCase {
  int bits;
  int64_t group_size;  // -1: one group
  bool desc_act, sym, v1;
};

std::string case_name(const ::testing::TestParamInfo<GptqCase>& info) {
  const GptqCase& c = info.param;
  return "int" + std::to_string(c.bits) + (c.group_size > 0 ? "_g" + std::to_string(c.group_size) : "_PerRow") +
         (c.desc_act ? "_DescAct" : "") + (c.sym ? "_Sym" : "_Asym") + (c.v1 ? "_V1" : "_V2");
}

class GptqLayouts : public ::testing::TestWithParam<GptqCase> {};

TEST_P(GptqLayouts, DequantizeExactly) {
  const GptqCase c = GetParam();
  Matrix m = random_matrix(16, 96, c.bits, c.group_size, c.desc_act, 7u + static_cast<uint32_t>(c.bits));
  if (c.sym)
    for (unsigned& z : m.zero) z = 1u << (c.bits - 1);
  test::TempDir dir;
  gptq_tensors(m, c.v1, kPrefix).write(dir.path(), {{"quant_method", "gptq"}, {"bits", c.bits}, {"group_size", c.group_size},
                                           {"desc_act", c.desc_act}, {"sym", c.sym},
                                           {"checkpoint_format", c.v1 ? "gptq" : "gptq_v2"}});
  expect_bitwise(m, read_back(dir.path(), m.rows, m.cols));
}

INSTANTIATE_TEST_SUITE_P(Variants, GptqLayouts,
                         ::testing::Values(GptqCase{4, 32, false, true, true}, GptqCase{4, 32, false, false, true},
                                           GptqCase{8, 32, false, false, true}, GptqCase{4, 32, true, false, true},
                                           GptqCase{8, 16, true, true, true}, GptqCase{4, -1, false, false, true},
                                           GptqCase{4, 32, false, false, false}),
                         case_name);

TEST(QuantLayouts, AwqDequantizesExactly) {
  const Matrix m = random_matrix(24, 64, 4, 32, false, 3);
  test::TempDir dir;
  awq_tensors(m).write(dir.path(), {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 32}, {"zero_point", true},
                                    {"version", "gemm"}});
  expect_bitwise(m, read_back(dir.path(), m.rows, m.cols));
}

TEST(QuantLayouts, CompressedTensorsDequantizeExactly) {
  struct Case {
    int bits;
    int64_t group_size;
    bool symmetric;
  };
  for (const Case c : {Case{4, 32, true}, Case{4, 16, false}, Case{8, 0, false}, Case{8, 32, true}}) {
    SCOPED_TRACE("bits " + std::to_string(c.bits) + " group " + std::to_string(c.group_size));
    // 20 rows: zero points of the last word are partly padding; 100 columns: so are the codes'.
    Matrix m = random_matrix(20, 100, c.bits, c.group_size, false, 11u + static_cast<uint32_t>(c.bits), DType::BF16);
    if (c.symmetric)
      for (unsigned& z : m.zero) z = 1u << (c.bits - 1);
    test::TempDir dir;
    ct_tensors(m, c.symmetric).write(dir.path(), ct_config(c.bits, c.group_size, c.symmetric));
    expect_bitwise(m, read_back(dir.path(), m.rows, m.cols));
  }
}

TEST(QuantLayouts, E4m3DecodesTheOcpFormat) {
  EXPECT_EQ(e4m3_to_f32(0x38), 1.0f);     // exponent 7 = bias: 2^0
  EXPECT_EQ(e4m3_to_f32(0x7E), 448.0f);   // the largest: 2^8 * 1.75
  EXPECT_EQ(e4m3_to_f32(0xFE), -448.0f);
  EXPECT_EQ(e4m3_to_f32(0x08), 0.015625f);        // the smallest normal, 2^-6
  EXPECT_EQ(e4m3_to_f32(0x01), 0.001953125f);     // the smallest subnormal, 2^-9
  EXPECT_EQ(e4m3_to_f32(0x07), 7 * 0.001953125f);  // the largest subnormal
  EXPECT_EQ(e4m3_to_f32(0x3D), 1.625f);
  EXPECT_TRUE(std::signbit(e4m3_to_f32(0x80)));
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0x7F)));
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0xFF)));
}

TEST(QuantLayouts, Fp8BlocksDequantizeExactly) {
  // 40 x 72 in 32 x 32 blocks: the last block row and column are partial.
  const int64_t rows = 40, cols = 72, b = 32;
  std::mt19937 rng(5);
  std::vector<uint8_t> codes(static_cast<size_t>(rows * cols));
  for (uint8_t& code : codes) {
    code = static_cast<uint8_t>(rng());
    if ((code & 0x7F) == 0x7F) code = 0x3F;
  }
  const int64_t block_rows = 2, block_cols = 3;
  std::vector<float> scale_inv(static_cast<size_t>(block_rows * block_cols));
  for (float& s : scale_inv) s = 1.0f / (100.0f + static_cast<float>(rng() % 300));
  Tensors t{kPrefix};
  t.names.push_back(std::string(kPrefix) + ".weight");
  t.dtypes.push_back(DType::F8_E4M3);
  t.shapes.push_back({rows, cols});
  t.data.push_back(codes);
  t.add(".weight_scale_inv", DType::F32, {block_rows, block_cols}, scale_inv);
  test::TempDir dir;
  t.write(dir.path(), {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"weight_block_size", {b, b}}});
  const std::vector<float> got = read_back(dir.path(), rows, cols);
  ASSERT_EQ(got.size(), codes.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const float want = e4m3_to_f32(codes[static_cast<size_t>(r * cols + c)]) *
                         scale_inv[static_cast<size_t>((r / b) * block_cols + c / b)];
      ASSERT_EQ(std::memcmp(&want, &got[static_cast<size_t>(r * cols + c)], 4), 0) << r << ", " << c;
    }
}

// The held layout keeps the stored bytes per weight: each fixture's
// quantized matrices hold what their stored tensors hold (less a g_idx that
// only restates the column order), to within the planes' alignment.
TEST(QuantLayouts, HeldBytesAreTheStoredBytes) {
  STRATA_REQUIRE_FIXTURES();
  for (const char* name : {"llama-gptq-4bit-g32", "llama-gptq-8bit-g32", "llama-awq-4bit-g32", "llama-fp8-block",
                           "llama-ct-w4a16-g32"}) {
    SCOPED_TRACE(name);
    const fs::path dir = test::fixtures_dir() / "models" / name;
    const Checkpoint checkpoint = Checkpoint::open(dir);
    const auto scheme = read_quant_scheme(dir, checkpoint);
    ASSERT_TRUE(scheme.has_value());
    int matrices = 0;
    for (int layer = 0; layer < 2; ++layer)
      for (const auto& [module, shape] : std::map<std::string, std::pair<int64_t, int64_t>>{
               {"self_attn.q_proj", {128, 128}}, {"self_attn.o_proj", {128, 128}}, {"mlp.up_proj", {256, 128}},
               {"mlp.down_proj", {128, 256}}}) {
        const std::string weight = "model.layers." + std::to_string(layer) + "." + module + ".weight";
        const auto q = find_quantized(checkpoint, *scheme, weight, shape.first, shape.second);
        ASSERT_TRUE(q.has_value()) << weight;
        uint64_t stored = q->stored_bytes;
        if (const TensorInfo* g = checkpoint.find(weight.substr(0, weight.size() - 7) + ".g_idx"))
          stored -= g->nbytes;
        if (const TensorInfo* s = checkpoint.find(weight.substr(0, weight.size() - 7) + ".weight_shape"))
          stored -= s->nbytes;
        const uint64_t held = quant_bytes(scheme->layout, shape.first, shape.second);
        EXPECT_GE(held, stored) << weight;
        EXPECT_LE(held, stored + 4 * kPlaneAlign) << weight;
        ++matrices;
      }
    EXPECT_EQ(matrices, 8);
  }
}

}  // namespace
}  // namespace strata
