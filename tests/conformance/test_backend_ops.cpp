// Every op of every backend built here (cpu, sim, cuda) against a plain
// double-precision reference written in this file, with a tolerance per op.
// Inputs go to the device and results come back through its copies, so a
// backend whose memory the host cannot read is tested the same way. An op a
// backend does not support is reported, not failed; a backend that is built
// but has no device here (cuda without a GPU) skips with the reason.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_device.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/kernels.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/sim/sim_device.h"

namespace strata {
namespace {

struct Backend {
  std::unique_ptr<Device> device;
  Ops* ops = nullptr;
};

// Opens the backend by name; a null device means it cannot run here (the
// test skips with `why`).
Backend open_backend(const std::string& name, CpuOps& cpu_ops, std::string& why) {
  Backend b;
  if (name == "cpu") {
    b.device = std::make_unique<CpuDevice>();
    b.ops = &cpu_ops;
  } else if (name == "sim") {
    b.device = std::make_unique<SimDevice>(0, uint64_t{1} << 30);
    b.ops = &cpu_ops;
  } else if (name == "cuda") {
    auto gpus = cuda::open_devices(0, why);
    if (!gpus.empty()) {
      b.device = std::move(gpus.front());
      b.ops = b.device->native_ops();
    }
  }
  return b;
}

class BackendOps : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string why;
    backend_ = open_backend(GetParam(), cpu_ops_, why);
    if (!backend_.device) GTEST_SKIP() << GetParam() << " backend not runnable here: " << why;
  }

  // Device memory holding `values`.
  template <typename T>
  DeviceBuffer upload(const std::vector<T>& values) {
    DeviceBuffer buffer(*backend_.device, std::max<size_t>(values.size() * sizeof(T), 64), "test data");
    if (!values.empty()) backend_.device->copy_in(buffer.data(), values.data(), values.size() * sizeof(T));
    return buffer;
  }
  std::vector<float> download(const DeviceBuffer& buffer, size_t floats) {
    std::vector<float> out(floats);
    backend_.device->copy_out(out.data(), buffer.data(), floats * sizeof(float));
    return out;
  }
  bool supported(OpKind op, DType dtype) {
    if (backend_.ops->supports(op, dtype)) return true;
    std::printf("[ not supported ] %s: op %d with %s weights\n", GetParam().c_str(), static_cast<int>(op),
                std::string(dtype_name(dtype)).c_str());
    return false;
  }
  Ops& ops() { return *backend_.ops; }

  ThreadPool pool_{2};
  CpuOps cpu_ops_{pool_};
  Backend backend_;
  std::mt19937 rng_{1234};
  std::vector<float> random(size_t n, float scale = 1.0f) {
    std::uniform_real_distribution<float> dist(-scale, scale);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng_);
    return v;
  }
};

// Weights stored in `dtype`: the raw bytes and their exact f32 values.
struct StoredMatrix {
  std::vector<uint8_t> bytes;
  std::vector<float> values;
};
StoredMatrix store(const std::vector<float>& values, DType dtype) {
  StoredMatrix m;
  m.bytes.resize(values.size() * dtype_size(dtype));
  m.values.resize(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::F32) {
      std::memcpy(m.bytes.data() + i * 4, &values[i], 4);
      m.values[i] = values[i];
      continue;
    }
    const uint16_t h = dtype == DType::BF16 ? cpu::f32_to_bf16(values[i]) : cpu::f32_to_f16(values[i]);
    std::memcpy(m.bytes.data() + i * 2, &h, 2);
    m.values[i] = dtype == DType::BF16 ? cpu::bf16_to_f32(h) : cpu::f16_to_f32(h);
  }
  return m;
}

constexpr DType kWeightDTypes[] = {DType::F32, DType::BF16, DType::F16};

TEST_P(BackendOps, MatmulWithBiasAndSeveralOutputs) {
  // Odd sizes on purpose: tile edges. n = 1 is decode, larger n is prefill.
  // 264 columns are whole 16-byte packs in every dtype (GPU kernels read
  // those with vector loads); 100 are not, in half precision.
  const size_t rows_a = 37, rows_b = 70;
  for (const size_t cols : {size_t{100}, size_t{264}})
  for (const DType dtype : kWeightDTypes) {
    if (!supported(OpKind::matmul, dtype)) continue;
    for (const size_t n : {size_t{1}, size_t{3}, size_t{17}, size_t{70}}) {
      const auto x = random(n * cols);
      const StoredMatrix a = store(random(rows_a * cols, 0.5f), dtype);
      const StoredMatrix b = store(random(rows_b * cols, 0.5f), dtype);
      const auto bias = random(rows_b);
      DeviceBuffer dx = upload(x), da = upload(a.bytes), db = upload(b.bytes), dbias = upload(bias);
      DeviceBuffer out_a(*backend_.device, n * rows_a * 4, "out"), out_b(*backend_.device, n * rows_b * 4, "out");
      const MatmulOutput outputs[] = {
          {MatrixView{dtype, da.data(), static_cast<int64_t>(rows_a), static_cast<int64_t>(cols)}, nullptr,
           out_a.floats()},
          {MatrixView{dtype, db.data(), static_cast<int64_t>(rows_b), static_cast<int64_t>(cols)}, dbias.floats(),
           out_b.floats()}};
      ops().matmul(dx.floats(), n, outputs);
      const auto got_a = download(out_a, n * rows_a), got_b = download(out_b, n * rows_b);
      for (size_t i = 0; i < n; ++i)
        for (size_t o = 0; o < 2; ++o) {
          const size_t rows = o == 0 ? rows_a : rows_b;
          const auto& w = o == 0 ? a.values : b.values;
          for (size_t r = 0; r < rows; ++r) {
            double want = o == 1 ? bias[r] : 0.0, magnitude = 0.0;
            for (size_t k = 0; k < cols; ++k) {
              want += static_cast<double>(x[i * cols + k]) * w[r * cols + k];
              magnitude += std::abs(static_cast<double>(x[i * cols + k]) * w[r * cols + k]);
            }
            const float got = (o == 0 ? got_a : got_b)[i * rows + r];
            // f32 accumulation in any order: a few ulps of the magnitude summed.
            ASSERT_NEAR(got, want, 2e-6 * magnitude + 1e-6)
                << dtype_name(dtype) << " cols=" << cols << " n=" << n << " output " << o << " [" << i << ","
                << r << "]";
          }
        }
    }
  }
}

TEST_P(BackendOps, RmsNorm) {
  const size_t rows = 5, dim = 96;
  const auto x = random(rows * dim, 3.0f), w = random(dim);
  DeviceBuffer dx = upload(x), dw = upload(w), dy(*backend_.device, rows * dim * 4, "y");
  ops().rms_norm(dx.floats(), dw.floats(), rows, dim, 1e-5f, dy.floats());
  const auto got = download(dy, rows * dim);
  for (size_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (size_t i = 0; i < dim; ++i) sum += static_cast<double>(x[r * dim + i]) * x[r * dim + i];
    const double scale = 1.0 / std::sqrt(sum / dim + 1e-5);
    for (size_t i = 0; i < dim; ++i)
      ASSERT_NEAR(got[r * dim + i], w[i] * x[r * dim + i] * scale, 1e-5 * std::abs(w[i] * x[r * dim + i] * scale) + 1e-6);
  }
}

TEST_P(BackendOps, EmbeddingIsExact) {
  const size_t vocab = 50, dim = 72;
  const std::vector<int32_t> ids{3, 0, 49, 3, 17};
  for (const DType dtype : kWeightDTypes) {
    if (!supported(OpKind::embedding, dtype)) continue;
    const StoredMatrix table = store(random(vocab * dim), dtype);
    DeviceBuffer dt = upload(table.bytes), dout(*backend_.device, ids.size() * dim * 4, "out");
    ops().embedding(MatrixView{dtype, dt.data(), static_cast<int64_t>(vocab), static_cast<int64_t>(dim)}, ids,
                    dout.floats());
    const auto got = download(dout, ids.size() * dim);
    for (size_t i = 0; i < ids.size(); ++i)
      for (size_t c = 0; c < dim; ++c)
        ASSERT_EQ(got[i * dim + c], table.values[static_cast<size_t>(ids[i]) * dim + c]) << dtype_name(dtype);
  }
}

TEST_P(BackendOps, AddSiluMulAndCopy) {
  const size_t n = 1000;
  const auto a = random(n, 8.0f), b = random(n, 2.0f);
  DeviceBuffer da = upload(a), db = upload(b), dc(*backend_.device, n * 4, "copy");
  ops().copy(dc.floats(), da.floats(), n);
  EXPECT_EQ(download(dc, n), a);
  ops().add_inplace(da.floats(), db.floats(), n);
  auto got = download(da, n);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], a[i] + b[i]);
  ops().silu_mul(dc.floats(), db.floats(), n);
  got = download(dc, n);
  for (size_t i = 0; i < n; ++i) {
    const double want = a[i] / (1.0 + std::exp(-static_cast<double>(a[i]))) * b[i];
    ASSERT_NEAR(got[i], want, 1e-6 * std::abs(want) + 1e-7) << i;
  }
}

TEST_P(BackendOps, RopeCountsPositionsFromEachRowsStart) {
  const int heads = 3, head_dim = 16;
  const int64_t rows = 2, tokens = 3, past = 5;
  const std::vector<int64_t> starts{0, 7};  // row 1 is left-padded: its first two slots clamp to position 0
  const Rope rope(head_dim, 10000.0, nullptr);
  const size_t n = static_cast<size_t>(rows * tokens) * heads * head_dim;
  const auto x = random(n);
  DeviceBuffer dx = upload(x);
  ops().rope(rope, dx.floats(), heads, rows, tokens, past, starts);
  const auto got = download(dx, n);
  const int half = head_dim / 2;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t pos = std::max<int64_t>(past + t - starts[static_cast<size_t>(r)], 0);
      for (int h = 0; h < heads; ++h) {
        const size_t base = (static_cast<size_t>(r * tokens + t) * heads + h) * head_dim;
        for (int i = 0; i < half; ++i) {
          const double angle = static_cast<double>(rope.inv_freq()[static_cast<size_t>(i)] * static_cast<float>(pos));
          const double x1 = x[base + i], x2 = x[base + i + half];
          ASSERT_NEAR(got[base + i], x1 * std::cos(angle) - x2 * std::sin(angle), 1e-5) << r << "," << t;
          ASSERT_NEAR(got[base + i + half], x2 * std::cos(angle) + x1 * std::sin(angle), 1e-5) << r << "," << t;
        }
      }
    }
}

// Reference attention in double over the cache as the host sees it.
std::vector<double> reference_attention(const AttentionShape& s, const std::vector<float>& q, size_t tokens,
                                        size_t past, size_t start, const std::vector<float>& keys,
                                        const std::vector<float>& values, size_t capacity) {
  const size_t d = static_cast<size_t>(s.head_dim), heads = static_cast<size_t>(s.heads);
  const size_t group = heads / static_cast<size_t>(s.kv_heads);
  std::vector<double> out(tokens * heads * d, 0.0);
  for (size_t t = 0; t < tokens; ++t)
    for (size_t h = 0; h < heads; ++h) {
      const size_t kv = h / group, visible = past + t + 1;
      const size_t window = static_cast<size_t>(s.window);
      const size_t first = std::max(start, (window > 0 && visible > start + window) ? visible - window : 0);
      std::vector<double> p(visible, 0.0);
      double max_score = -INFINITY, sum = 0;
      for (size_t j = first; j < visible; ++j) {
        double dot = 0;
        for (size_t i = 0; i < d; ++i) dot += static_cast<double>(q[(t * heads + h) * d + i]) * keys[(kv * capacity + j) * d + i];
        p[j] = dot / std::sqrt(static_cast<double>(d));
        max_score = std::max(max_score, p[j]);
      }
      for (size_t j = first; j < visible; ++j) sum += p[j] = std::exp(p[j] - max_score);
      for (size_t j = first; j < visible; ++j)
        for (size_t i = 0; i < d; ++i) out[(t * heads + h) * d + i] += p[j] / sum * values[(kv * capacity + j) * d + i];
    }
  return out;
}

TEST_P(BackendOps, StoreKvThenAttentionWithGroupsPaddingAndWindow) {
  const size_t capacity = 40, past = 20, tokens = 4;
  for (const AttentionShape shape : {AttentionShape{4, 2, 16, 0}, AttentionShape{6, 1, 32, 9}}) {
    // start past + 2: the first two queries are a left-padded row's padding
    // and see no key at all (their output is zeros).
    for (const size_t start : {size_t{0}, size_t{6}, past + 2}) {
      const size_t d = static_cast<size_t>(shape.head_dim), kv_heads = static_cast<size_t>(shape.kv_heads);
      const size_t cache_floats = kv_heads * capacity * d;
      auto keys = random(cache_floats), values = random(cache_floats);
      const auto new_k = random(tokens * kv_heads * d), new_v = random(tokens * kv_heads * d);
      const auto q = random(tokens * static_cast<size_t>(shape.heads) * d, 2.0f);
      DeviceBuffer dk = upload(keys), dv = upload(values), dnk = upload(new_k), dnv = upload(new_v), dq = upload(q);
      DeviceBuffer dout(*backend_.device, q.size() * 4, "out");
      DeviceBuffer scratch(*backend_.device, 2 * capacity * 4, "scratch");
      ops().store_kv(dnk.floats(), dnv.floats(), tokens, shape.kv_heads, shape.head_dim, capacity, past,
                     dk.floats(), dv.floats());
      // The cache as the reference expects it after the store.
      for (size_t t = 0; t < tokens; ++t)
        for (size_t h = 0; h < kv_heads; ++h)
          for (size_t i = 0; i < d; ++i) {
            keys[(h * capacity + past + t) * d + i] = new_k[(t * kv_heads + h) * d + i];
            values[(h * capacity + past + t) * d + i] = new_v[(t * kv_heads + h) * d + i];
          }
      ASSERT_EQ(download(dk, cache_floats), keys);
      ASSERT_EQ(download(dv, cache_floats), values);
      ops().attention(shape, dq.floats(), tokens, past, start, dk.floats(), dv.floats(), capacity, dout.floats(),
                      std::span<float>(scratch.floats(), 2 * capacity));
      const auto got = download(dout, q.size());
      const auto want = reference_attention(shape, q, tokens, past, start, keys, values, capacity);
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], want[i], 1e-5) << "heads " << shape.heads << " window " << shape.window << " start "
                                           << start << " at " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendOps, ::testing::Values("cpu", "sim", "cuda"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace strata
