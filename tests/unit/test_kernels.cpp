// The matmul kernels of every instruction set this CPU runs, against a double
// precision reference, and the exact half-precision conversions.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <utility>

#include "backend/cpu/kernels.h"
#include "backend/cpu/ops.h"
#include "quant/quantize.h"

namespace strata::cpu {
namespace {

std::vector<const MatmulKernels*> runnable_kernels() {
  std::vector<const MatmulKernels*> out{&generic_kernels()};
  if (cpu_supports_avx2()) out.push_back(&avx2_kernels());
  if (cpu_supports_avx512()) out.push_back(&avx512_kernels());
  return out;
}

TEST(HalfPrecision, Bf16RoundTripsAndRoundsToNearestEven) {
  for (uint32_t v = 0; v < 0x10000; ++v) {
    const float f = bf16_to_f32(static_cast<uint16_t>(v));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_bf16(f), v);
  }
  // 1 + 2^-8 is halfway between two bf16 values: ties go to even (1.0).
  EXPECT_EQ(f32_to_bf16(1.0f + 1.0f / 256), f32_to_bf16(1.0f));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(HalfPrecision, F16RoundTripsEveryValue) {
  for (uint32_t v = 0; v < 0x10000; ++v) {
    const float f = f16_to_f32(static_cast<uint16_t>(v));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_f16(f), v) << std::hex << v;
  }
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);                 // rounds up to infinity
}

// Every tile shape, odd k (masked and scalar tails), all weight dtypes.
TEST(MatmulKernels, TilesMatchDoublePrecision) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (const MatmulKernels* kernels : runnable_kernels()) {
    for (const size_t k : {1u, 7u, 16u, 33u, 172u}) {
      std::vector<float> x(4 * k), w32(8 * k);
      for (auto& v : x) v = normal(rng);
      for (auto& v : w32) v = normal(rng);
      std::vector<uint16_t> wbf(8 * k), wh(8 * k);
      for (size_t i = 0; i < w32.size(); ++i) {
        wbf[i] = f32_to_bf16(w32[i]);
        wh[i] = f32_to_f16(w32[i]);
      }
      for (const DType dtype : {DType::F32, DType::BF16, DType::F16}) {
        const void* w = dtype == DType::F32 ? static_cast<const void*>(w32.data())
                        : dtype == DType::BF16 ? static_cast<const void*>(wbf.data())
                                               : static_cast<const void*>(wh.data());
        for (int nx = 1; nx <= kernels->tile_x; ++nx) {
          const int max_w = nx == 1 ? kernels->tile_w_single : kernels->tile_w;
          for (int nw = 1; nw <= max_w; ++nw) {
            float out[32] = {};
            kernels->tile_for(dtype)(x.data(), k, nx, w, k, nw, k, out, 8);
            for (int i = 0; i < nx; ++i) {
              for (int j = 0; j < nw; ++j) {
                double ref = 0, magnitude = 0;
                std::vector<float> row(k);
                to_f32(dtype, static_cast<const uint8_t*>(w) + j * k * dtype_size(dtype), row.data(), k);
                for (size_t t = 0; t < k; ++t) {
                  ref += static_cast<double>(x[i * k + t]) * row[t];
                  magnitude += std::abs(static_cast<double>(x[i * k + t]) * row[t]);
                }
                // f32 accumulation error is bounded by k * eps * sum|terms|.
                const double bound = static_cast<double>(k) * 1.2e-7 * magnitude + 1e-30;
                EXPECT_NEAR(out[i * 8 + j], ref, bound)
                    << kernels->name << " " << dtype_name(dtype) << " k=" << k << " tile " << nx << "x" << nw;
              }
            }
          }
        }
      }
    }
  }
}

// The blocked product of many x rows sums every output exactly as the tiles
// do: k across several column blocks with a tail, x rows across row blocks,
// weight rows in whole and partial panels, every weight dtype.
TEST(MatmulKernels, BlockedProductEqualsTheTilesBitForBit) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  for (const MatmulKernels* kernels : runnable_kernels()) {
    for (const DType dtype : {DType::F32, DType::BF16, DType::F16}) {
      const GemmFn gemm = kernels->gemm_for(dtype);
      if (!gemm) continue;
      // n: x blocks whole and ragged, and every remainder of the row steps.
      for (const auto& [k, n] : {std::pair<size_t, size_t>{3, 70}, {8, 1}, {515, 4}, {1100, 70}, {40, 5}, {24, 130}}) {
        const size_t rows = 11;
        std::vector<float> x(n * k), w32(rows * k);
        for (auto& v : x) v = normal(rng);
        for (auto& v : w32) v = normal(rng);
        std::vector<uint16_t> w16(rows * k);
        for (size_t i = 0; i < w32.size(); ++i)
          w16[i] = dtype == DType::BF16 ? f32_to_bf16(w32[i]) : f32_to_f16(w32[i]);
        const void* w = dtype == DType::F32 ? static_cast<const void*>(w32.data()) : w16.data();
        std::vector<float> blocked(n * rows), tiled(n * rows);
        gemm(x.data(), k, n, w, k, static_cast<int64_t>(rows), k, blocked.data(), rows);
        for (size_t i = 0; i < n; ++i)
          for (size_t j = 0; j < rows; ++j)
            kernels->tile_for(dtype)(x.data() + i * k, k, 1, static_cast<const uint8_t*>(w) + j * k * dtype_size(dtype),
                                     k, 1, k, tiled.data() + i * rows + j, rows);
        EXPECT_EQ(0, std::memcmp(blocked.data(), tiled.data(), blocked.size() * sizeof(float)))
            << kernels->name << " " << dtype_name(dtype) << " k=" << k << " n=" << n;
      }
    }
  }
}

// Quantized weights widened in the tiles' registers give what the f32 tiles
// give on the dequantized rows, bit for bit (and the set's own dequantization
// writes exactly those rows): 4 and 8 bits, with and without
// stored zeros, every scale dtype, ragged k, and a view of some rows of its
// block (a fused projection's part).
TEST(MatmulKernels, QuantizedTilesEqualTheF32TilesOfTheDequantizedRows) {
  std::mt19937 rng(9);
  std::normal_distribution<float> normal;
  for (const MatmulKernels* kernels : runnable_kernels()) {
    if (!kernels->tile_quant) continue;
    for (const int bits : {4, 8})
      for (const bool zeros : {false, true})
        for (const DType scale_dtype : {DType::F16, DType::BF16, DType::F32})
          for (const auto& [k, group] : {std::pair<int64_t, int64_t>{96, 32}, {100, 32}, {72, 0}, {13, 8}}) {
            QuantLayout layout;
            layout.bits = bits;
            layout.group_size = group;
            layout.scale_dtype = scale_dtype;
            layout.stored_zeros = zeros;
            layout.zero_offset = zeros ? 1 : 0;
            const int64_t block_rows = 12, first = 3, rows = 7;
            std::vector<uint8_t> block(quant_bytes(layout, block_rows, k));
            for (auto& b : block) b = static_cast<uint8_t>(rng());
            // Scales: finite values of the dtype.
            const QuantPlanes p = quant_planes(layout, block_rows, k);
            for (int64_t s = 0; s < block_rows * p.groups; ++s) {
              const float v = 0.01f + 0.001f * static_cast<float>(s % 37);
              uint8_t* at = block.data() + p.scales + static_cast<size_t>(s) * dtype_size(scale_dtype);
              if (scale_dtype == DType::F32) std::memcpy(at, &v, 4);
              const uint16_t h = scale_dtype == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
              if (scale_dtype != DType::F32) std::memcpy(at, &h, 2);
            }
            const MatrixView all{DType::U8, block.data(), block_rows, k, &layout};
            const MatrixView view = all.rows_view(first, rows);
            std::vector<float> w32(static_cast<size_t>(rows * k));
            view.dequantize(0, rows, w32.data());
            if (kernels->dequant_quant) {
              std::vector<float> fast(w32.size());
              kernels->dequant_quant(view, 0, rows, fast.data());
              EXPECT_EQ(0, std::memcmp(fast.data(), w32.data(), w32.size() * sizeof(float)))
                  << kernels->name << " dequant int" << bits << " k=" << k;
            }
            for (const int nx : {1, 2}) {
              std::vector<float> x(static_cast<size_t>(nx * k));
              for (auto& v : x) v = normal(rng);
              for (int nw = 1; nw <= std::min(4, kernels->tile_w); ++nw) {
                std::vector<float> quant(static_cast<size_t>(nx * nw)), f32(quant.size());
                kernels->tile_quant(x.data(), static_cast<size_t>(k), nx, view, 2, nw, quant.data(), static_cast<size_t>(nw));
                kernels->tile_f32(x.data(), static_cast<size_t>(k), nx, w32.data() + 2 * k, static_cast<size_t>(k), nw,
                                  static_cast<size_t>(k), f32.data(), static_cast<size_t>(nw));
                EXPECT_EQ(0, std::memcmp(quant.data(), f32.data(), quant.size() * sizeof(float)))
                    << kernels->name << " int" << bits << (zeros ? " zeros" : "") << " " << dtype_name(scale_dtype)
                    << " k=" << k << " nx=" << nx << " nw=" << nw;
              }
            }
          }
  }
}

// Fast mode's integer products of quantized weights and activations: each
// output within what rounding x to int8 per block can move it (half a step
// of each block's scale times the block's |w|), and independent of how many
// rows one call computes.
TEST(MatmulKernels, QuantizedFastDotsStayWithinTheActivationRounding) {
  std::mt19937 rng(4);
  std::normal_distribution<float> normal;
  for (const MatmulKernels* kernels : runnable_kernels()) {
    if (!kernels->dot_quant) continue;
    // k = 320: one batch of eight groups with vector scales, then two alone
    // (a pair, for 4-bit); k = 352: then three (a pair and one unpaired).
    for (const auto& [bits, k] : {std::pair<int, int64_t>{8, 128}, {4, 128}, {8, 320}, {4, 320}, {4, 352}}) {
      const InSituQuant q{bits, QuantizeMethod::search};
      const QuantLayout layout = in_situ_layout(q);
      const int64_t rows = 6;
      std::vector<float> w(static_cast<size_t>(rows * k)), x(static_cast<size_t>(k));
      for (auto& v : w) v = normal(rng);
      for (auto& v : x) v = normal(rng);
      std::vector<uint8_t> block(quant_bytes(layout, rows, k));
      quantize_rows(q, layout, w.data(), rows, k, 0, rows, block.data());
      std::vector<float> dequantized(w.size());
      dequantize_rows(layout, block.data(), rows, k, 0, rows, dequantized.data());
      std::vector<int8_t> xq(static_cast<size_t>(k));
      std::vector<float> xd(static_cast<size_t>(k / 32));
      std::vector<int32_t> xs(static_cast<size_t>(k / 32));
      quantize_activations(x.data(), static_cast<size_t>(k), xq.data(), xd.data(), xs.data());
      if (bits == 4) {
        const std::vector<int8_t> natural = xq;
        order_activations_4bit(natural.data(), natural.size(), xq.data());
      }
      const QuantPlanes p = quant_planes(layout, rows, k);
      std::vector<float> together(static_cast<size_t>(rows)), alone(static_cast<size_t>(rows));
      kernels->dot_quant(xq.data(), xd.data(), xs.data(), block.data() + p.codes, p.code_row, block.data() + p.scales,
                         static_cast<size_t>(p.groups) * 2, p.groups, bits, static_cast<int>(rows), together.data());
      for (int64_t r = 0; r < rows; ++r) {
        kernels->dot_quant(xq.data(), xd.data(), xs.data(), block.data() + p.codes + r * p.code_row, p.code_row,
                           block.data() + p.scales + r * p.groups * 2, static_cast<size_t>(p.groups) * 2, p.groups, bits,
                           1, alone.data() + r);
        double exact = 0, bound = 0;
        for (int64_t c = 0; c < k; ++c) {
          const double wv = dequantized[static_cast<size_t>(r * k + c)];
          exact += wv * x[static_cast<size_t>(c)];
          bound += std::fabs(wv) * xd[static_cast<size_t>(c / 32)] / 2;
        }
        EXPECT_NEAR(together[static_cast<size_t>(r)], exact, bound * 1.01 + 1e-4)
            << kernels->name << " int" << bits << " k=" << k;
      }
      EXPECT_EQ(0, std::memcmp(together.data(), alone.data(), alone.size() * sizeof(float))) << kernels->name;
    }
  }
}

TEST(MatmulKernels, SplitAcrossThreadsChangesNoBit) {
  const size_t n = 5, k = 96, m = 37;
  // n = 1 uses the wide decode tiles, n = 5 the square ones: both must agree
  // bit for bit with every other split.
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  std::vector<float> x(n * k), w(m * k);
  for (auto& v : x) v = normal(rng);
  for (auto& v : w) v = normal(rng);
  const MatrixView view{DType::F32, w.data(), static_cast<int64_t>(m), static_cast<int64_t>(k)};
  std::vector<float> one(n * m), three(n * m);
  ThreadPool pool1(1), pool3(3);
  const MatmulOutput a[] = {{view, nullptr, one.data()}};
  const MatmulOutput b[] = {{view, nullptr, three.data()}};
  matmul(pool1, x.data(), n, a);
  matmul(pool3, x.data(), n, b);
  EXPECT_EQ(0, std::memcmp(one.data(), three.data(), one.size() * sizeof(float)));
  for (size_t row = 0; row < n; ++row) {
    std::vector<float> single(m);
    const MatmulOutput c[] = {{view, nullptr, single.data()}};
    matmul(pool3, x.data() + row * k, 1, c);
    EXPECT_EQ(0, std::memcmp(single.data(), one.data() + row * m, m * sizeof(float))) << "row " << row;
  }
}

TEST(FastBf16, TilesMatchDoublePrecisionOfTheRoundedProducts) {
  // Fast mode's AVX512-BF16 tiles, where the CPU has them: x rounded to
  // bf16 times bf16 weights, against those products summed in double.
  if (!cpu_supports_avx512_bf16()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  const FastBf16Kernels fast = avx512_bf16_kernels();
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  for (const size_t k : {1u, 7u, 32u, 33u, 64u, 172u}) {
    std::vector<float> x(4 * k);
    std::vector<uint16_t> xb(4 * k), w(8 * k);
    for (auto& v : x) v = normal(rng);
    for (auto& v : w) v = f32_to_bf16(normal(rng));
    fast.round(x.data(), xb.data(), x.size());
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(xb[i], f32_to_bf16(x[i])) << "rounding, element " << i;
    for (int nx = 1; nx <= 4; ++nx)
      for (int nw = 1; nw <= (nx == 1 ? 8 : 4); ++nw) {
        float out[32] = {};
        fast.tile(xb.data(), k, nx, w.data(), k, nw, k, out, 8);
        for (int i = 0; i < nx; ++i)
          for (int j = 0; j < nw; ++j) {
            double ref = 0, magnitude = 0;
            for (size_t t = 0; t < k; ++t) {
              const double term = static_cast<double>(bf16_to_f32(xb[i * k + t])) * bf16_to_f32(w[j * k + t]);
              ref += term;
              magnitude += std::abs(term);
            }
            EXPECT_NEAR(out[i * 8 + j], ref, static_cast<double>(k) * 1.2e-7 * magnitude + 1e-30)
                << "k=" << k << " tile " << nx << "x" << nw;
          }
      }
  }
}

TEST(FastBf16, ProductsChangeNoBitWithTheSplitAndOnlyBf16WeightsChange) {
  // Fast mode keeps exact mode's determinism: decode tiles and square tiles,
  // one thread or three, give the same bits; F32 weights are not rounded.
  const size_t n = 5, k = 96, m = 37;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  std::vector<float> x(n * k), w32(m * k);
  std::vector<uint16_t> wb(m * k);
  for (auto& v : x) v = normal(rng);
  for (size_t i = 0; i < w32.size(); ++i) wb[i] = f32_to_bf16(w32[i] = normal(rng));
  const MatrixView bf16{DType::BF16, wb.data(), static_cast<int64_t>(m), static_cast<int64_t>(k)};
  const MatrixView f32{DType::F32, w32.data(), static_cast<int64_t>(m), static_cast<int64_t>(k)};
  ThreadPool pool1(1), pool3(3);
  std::vector<float> one(n * m), three(n * m), exact(n * m), fast_f32(n * m), exact_f32(n * m);
  matmul(pool1, x.data(), n, std::vector<MatmulOutput>{{bf16, nullptr, one.data()}}, ComputeMode::fast);
  matmul(pool3, x.data(), n, std::vector<MatmulOutput>{{bf16, nullptr, three.data()}}, ComputeMode::fast);
  EXPECT_EQ(one, three);
  for (size_t row = 0; row < n; ++row) {
    std::vector<float> single(m);
    matmul(pool3, x.data() + row * k, 1, std::vector<MatmulOutput>{{bf16, nullptr, single.data()}}, ComputeMode::fast);
    EXPECT_EQ(0, std::memcmp(single.data(), one.data() + row * m, m * sizeof(float))) << "row " << row;
  }
  matmul(pool3, x.data(), n, std::vector<MatmulOutput>{{bf16, nullptr, exact.data()}}, ComputeMode::exact);
  EXPECT_NE(one, exact) << "fast mode rounds the activations";
  matmul(pool3, x.data(), n, std::vector<MatmulOutput>{{f32, nullptr, fast_f32.data()}}, ComputeMode::fast);
  matmul(pool3, x.data(), n, std::vector<MatmulOutput>{{f32, nullptr, exact_f32.data()}}, ComputeMode::exact);
  EXPECT_EQ(fast_f32, exact_f32);
}

TEST(ThreadPool, CoversEveryIndexOnce) {
  ThreadPool pool(3);
  for (const bool dynamic : {false, true})
  for (const size_t n : {1u, 2u, 3u, 10u, 1000u}) {
    std::vector<std::atomic<int>> hits(n);
    std::atomic<int> odd_chunks{0};
    auto count = [&](size_t begin, size_t end, int) {
      for (size_t i = begin; i < end; ++i) ++hits[i];
      if (dynamic && begin % 4 != 0) ++odd_chunks;  // chunks start at multiples of the grain
    };
    if (dynamic)
      pool.parallel_for_dynamic(n, 4, count);
    else
      pool.parallel_for(n, 4, count);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i], 1) << "n=" << n << " i=" << i << " dynamic " << dynamic;
    EXPECT_EQ(odd_chunks, 0);
  }
}

TEST(Rope, Llama3ScalingFollowsTransformers) {
  // Frequencies with wavelength above original/low_freq_factor are divided by
  // factor; those below original/high_freq_factor are kept; between, smoothed.
  Rope::Llama3Scaling scaling{8.0f, 1.0f, 4.0f, 8192.0f};
  const Rope plain(128, 500000.0, nullptr);
  const Rope scaled(128, 500000.0, &scaling);
  // Position 1 rotates (x, 0) by the frequency itself: read it back.
  auto angle_of = [](const Rope& rope, int i) {
    std::vector<float> head(128, 0.0f);
    head[static_cast<size_t>(i)] = 1.0f;
    rope.apply(head.data(), 1, 1);
    return std::atan2(head[static_cast<size_t>(i + 64)], head[static_cast<size_t>(i)]);
  };
  EXPECT_FLOAT_EQ(angle_of(scaled, 0), angle_of(plain, 0));              // highest frequency: kept
  EXPECT_NEAR(angle_of(scaled, 63), angle_of(plain, 63) / 8.0f, 1e-9);  // lowest: divided by 8
}

}  // namespace
}  // namespace strata::cpu
