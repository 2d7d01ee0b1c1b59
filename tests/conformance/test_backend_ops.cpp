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
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_device.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/kernels.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/sim/sim_device.h"
#include "quant/quant_layout.h"
#include "test_support.h"

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
    if (!backend_.device) STRATA_SKIP_WITHOUT_GPU(GetParam() << " backend not runnable here: " << why);
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

// The unit roundoff of float32: every correctly rounded f32 operation is
// within this much of the exact result, relatively.
constexpr double kUnit = 0x1p-24;

TEST_P(BackendOps, SupportsTellsWhichWeightsItWidens) {
  // Every backend here widens these three matrix formats; no backend takes
  // booleans as weights; the f32-only ops ignore the dtype.
  for (const DType dtype : kWeightDTypes) {
    EXPECT_TRUE(ops().supports(OpKind::matmul, dtype)) << dtype_name(dtype);
    EXPECT_TRUE(ops().supports(OpKind::embedding, dtype)) << dtype_name(dtype);
  }
  EXPECT_FALSE(ops().supports(OpKind::matmul, DType::BOOL));
  EXPECT_FALSE(ops().supports(OpKind::embedding, DType::BOOL));
  for (const OpKind op : {OpKind::rms_norm, OpKind::layer_norm, OpKind::add, OpKind::glu, OpKind::activate,
                          OpKind::scale, OpKind::softcap, OpKind::rope, OpKind::store_kv, OpKind::attention,
                          OpKind::copy, OpKind::zero, OpKind::gather_rows, OpKind::add_scaled_rows,
                          OpKind::to_host, OpKind::from_host})
    EXPECT_TRUE(ops().supports(op, DType::F32)) << static_cast<int>(op);
}

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

TEST_P(BackendOps, RmsNormWithAndWithoutWeightOffset) {
  // Offset 0 is Llama's weight * x_hat, offset 1 Gemma's (1 + weight) * x_hat.
  const size_t rows = 5, dim = 96;
  const auto x = random(rows * dim, 3.0f), w = random(dim);
  DeviceBuffer dx = upload(x), dw = upload(w), dy(*backend_.device, rows * dim * 4, "y");
  for (const float offset : {0.0f, 1.0f}) {
    ops().rms_norm(dx.floats(), dw.floats(), offset, rows, dim, 1e-5f, dy.floats());
    const auto got = download(dy, rows * dim);
    for (size_t r = 0; r < rows; ++r) {
      double sum = 0;
      for (size_t i = 0; i < dim; ++i) sum += static_cast<double>(x[r * dim + i]) * x[r * dim + i];
      const double scale = 1.0 / std::sqrt(sum / dim + 1e-5);
      for (size_t i = 0; i < dim; ++i) {
        const double want = (offset + static_cast<double>(w[i])) * x[r * dim + i] * scale;
        // The f32 sum of dim squares is within dim * u of its value (5.7e-6
        // here), half that after the rsqrt, plus a few roundings: 1e-5.
        ASSERT_NEAR(got[r * dim + i], want, 1e-5 * std::abs(want) + 1e-6) << "offset " << offset;
      }
    }
    // In place (Qwen3's q/k head norms): the same bits as into another buffer.
    ops().rms_norm(dx.floats(), dw.floats(), offset, rows, dim, 1e-5f, dx.floats());
    EXPECT_EQ(download(dx, rows * dim), got) << "offset " << offset;
    dx = upload(x);
  }
}

TEST_P(BackendOps, LayerNormWithAndWithoutBias) {
  // A mean far from 0 against the spread, as GPT-2's residual stream has.
  const size_t rows = 4, dim = 96;
  auto x = random(rows * dim, 3.0f);
  for (float& v : x) v += 5.0f;
  const auto w = random(dim), b = random(dim);
  DeviceBuffer dx = upload(x), dw = upload(w), db = upload(b), dy(*backend_.device, rows * dim * 4, "y");
  for (const bool with_bias : {true, false}) {
    ops().layer_norm(dx.floats(), dw.floats(), with_bias ? db.floats() : nullptr, rows, dim, 1e-5f, dy.floats());
    const auto got = download(dy, rows * dim);
    for (size_t r = 0; r < rows; ++r) {
      const float* xr = x.data() + r * dim;
      double mean = 0, mean_abs = 0, var = 0;
      for (size_t i = 0; i < dim; ++i) {
        mean += xr[i];
        mean_abs += std::abs(xr[i]);
      }
      mean /= dim;
      mean_abs /= dim;
      for (size_t i = 0; i < dim; ++i) var += (xr[i] - mean) * (xr[i] - mean);
      const double rstd = 1.0 / std::sqrt(var / dim + 1e-5);
      for (size_t i = 0; i < dim; ++i) {
        const double x_hat = (xr[i] - mean) * rstd;
        const double want = x_hat * w[i] + (with_bias ? b[i] : 0.0);
        // f32 sums of dim terms in any order are within dim * u of the
        // magnitudes summed: the mean's error (dim * u * mean|x|) moves
        // x_hat by that times rstd; the variance's relative error moves
        // x_hat relatively; a few more roundings for weight and bias.
        const double tol = dim * kUnit * (std::abs(w[i]) * (mean_abs * rstd + std::abs(x_hat)) + std::abs(want));
        ASSERT_NEAR(got[r * dim + i], want, tol + 1e-7) << (with_bias ? "bias" : "no bias") << " [" << r << ","
                                                        << i << "]";
      }
    }
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

double reference_activation(Activation act, double v) {
  if (act == Activation::silu) return v / (1.0 + std::exp(-v));
  const double sqrt_2_over_pi = std::sqrt(2.0 / 3.14159265358979323846);
  return 0.5 * v * (1.0 + std::tanh(sqrt_2_over_pi * (v + 0.044715 * v * v * v)));
}

// How far an f32 activation may be from the exact one at v. silu is a few
// correctly rounded steps: a few ulps of the result. gelu_tanh's 1 + tanh
// cancels for negative v, so its error is absolute: tanh within a couple of
// ulps of 1 plus its argument's relative error times |arg| sech^2(arg) <= 0.45,
// i.e. a few u, times 0.5 |v|. 1e-6 is 16 u.
double activation_tolerance(Activation act, double v, double want) {
  return 1e-6 * (std::abs(want) + (act == Activation::gelu_tanh ? std::abs(v) : 0.0)) + 1e-7;
}

const char* activation_name(Activation act) { return act == Activation::silu ? "silu" : "gelu_tanh"; }

TEST_P(BackendOps, AddGluAndCopy) {
  const size_t n = 1000;
  const auto a = random(n, 8.0f), b = random(n, 2.0f);
  DeviceBuffer da = upload(a), db = upload(b), dc(*backend_.device, n * 4, "copy");
  ops().copy(dc.floats(), da.floats(), n);
  EXPECT_EQ(download(dc, n), a);
  ops().add_inplace(da.floats(), db.floats(), n);
  auto got = download(da, n);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], a[i] + b[i]);
  for (const Activation act : {Activation::silu, Activation::gelu_tanh}) {
    ops().copy(dc.floats(), da.floats(), n);  // da holds a + b now
    ops().glu(act, dc.floats(), db.floats(), n);
    got = download(dc, n);
    for (size_t i = 0; i < n; ++i) {
      const float v = a[i] + b[i];  // what da holds
      const double activated = reference_activation(act, v), want = activated * b[i];
      // The product with up scales the activation's error and adds one rounding.
      const double tol = activation_tolerance(act, v, activated) * std::abs(b[i]) + kUnit * std::abs(want);
      ASSERT_NEAR(got[i], want, tol) << activation_name(act) << " at " << i << " v=" << v;
    }
  }
}

TEST_P(BackendOps, ActivateInPlace) {
  const size_t n = 1000;
  const auto a = random(n, 8.0f);
  DeviceBuffer da(*backend_.device, n * 4, "x");
  for (const Activation act : {Activation::silu, Activation::gelu_tanh}) {
    backend_.device->copy_in(da.data(), a.data(), n * 4);
    ops().activate(act, da.floats(), n);
    const auto got = download(da, n);
    for (size_t i = 0; i < n; ++i) {
      const double want = reference_activation(act, a[i]);
      ASSERT_NEAR(got[i], want, activation_tolerance(act, a[i], want)) << activation_name(act) << " at " << i;
    }
  }
}

TEST_P(BackendOps, ScaleIsOneRoundedProduct) {
  // Gemma's embedding normalizer: sqrt(2048) rounded to f32. One correctly
  // rounded product per element, so every backend gives the same bits.
  const size_t n = 777;
  const auto a = random(n, 4.0f);
  const float factor = std::sqrt(2048.0f);
  DeviceBuffer da = upload(a);
  ops().scale(da.floats(), factor, n);
  const auto got = download(da, n);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], a[i] * factor) << i;
}

TEST_P(BackendOps, SoftcapBendsLogitsTowardTheCap) {
  // Gemma 2's final_logit_softcapping is 30; logits reach well past it.
  const size_t n = 1000;
  const float cap = 30.0f;
  const auto a = random(n, 90.0f);
  DeviceBuffer da = upload(a);
  ops().softcap(da.floats(), cap, n);
  const auto got = download(da, n);
  for (size_t i = 0; i < n; ++i) {
    const double want = std::tanh(static_cast<double>(a[i]) / cap) * cap;
    // Division, tanh (CUDA's tanhf is within 2 ulps) and product: a few u
    // relative; tanh's relative condition number y sech^2(y) / tanh(y) is
    // at most 1, so the division's error does not grow. 1e-6 is 16 u.
    ASSERT_NEAR(got[i], want, 1e-6 * std::abs(want) + 1e-7) << i;
  }
}

TEST_P(BackendOps, RopeCountsPositionsFromEachRowsStart) {
  const int heads = 3, head_dim = 16;
  const int64_t rows = 2, tokens = 3, past = 5;
  const std::vector<int64_t> starts{0, 7};  // row 1 is left-padded: its first two slots clamp to position 0
  // From theta; the same frequencies given ready; frequencies a family
  // computed itself (longrope's, divided per dimension) with Phi-3's
  // attention scaling sqrt(1 + ln(32) / ln(4096)). All alive at once: a
  // backend may cache a rope's tables by its address.
  const Rope from_theta(head_dim, 10000.0, nullptr);
  const Rope given(from_theta.inv_freq(), 1.0f);
  std::vector<float> longrope = from_theta.inv_freq();
  for (size_t i = 0; i < longrope.size(); ++i) longrope[i] /= 1.0f + 0.5f * static_cast<float>(i);
  const Rope scaled(longrope, 1.1902381f);
  ASSERT_EQ(given.head_dim(), head_dim);
  const size_t n = static_cast<size_t>(rows * tokens) * heads * head_dim;
  const auto x = random(n);
  std::vector<float> theta_result;
  for (const Rope* rope : {&from_theta, &given, &scaled}) {
    DeviceBuffer dx = upload(x);
    ops().rope(*rope, dx.floats(), heads, rows, tokens, past, starts);
    const auto got = download(dx, n);
    // Ready frequencies run the same code as computed ones.
    if (rope == &from_theta) theta_result = got;
    if (rope == &given) {
      ASSERT_EQ(got, theta_result);
    }
    const int half = head_dim / 2;
    const double scaling = rope->attention_scaling();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t t = 0; t < tokens; ++t) {
        const int64_t pos = std::max<int64_t>(past + t - starts[static_cast<size_t>(r)], 0);
        for (int h = 0; h < heads; ++h) {
          const size_t base = (static_cast<size_t>(r * tokens + t) * heads + h) * head_dim;
          for (int i = 0; i < half; ++i) {
            // The angle is the same f32 product everywhere; cos and sin are
            // within a few ulps (CUDA's cosf/sinf: 2), |x| <= 1, and the
            // scaling is near 1: 1e-5 is over 100 u of the result's scale.
            const double angle =
                static_cast<double>(rope->inv_freq()[static_cast<size_t>(i)] * static_cast<float>(pos));
            const double c = std::cos(angle) * scaling, s = std::sin(angle) * scaling;
            const double x1 = x[base + i], x2 = x[base + i + half];
            ASSERT_NEAR(got[base + i], x1 * c - x2 * s, 1e-5) << "scaling " << scaling << " " << r << "," << t;
            ASSERT_NEAR(got[base + i + half], x2 * c + x1 * s, 1e-5) << "scaling " << scaling << " " << r << ","
                                                                      << t;
          }
        }
      }
  }
}

// Reference attention in double over the cache as the host sees it, with
// the tolerance each output is held to.
struct ReferenceAttention {
  std::vector<double> out;
  std::vector<double> tolerance;
};
ReferenceAttention reference_attention(const AttentionShape& s, const std::vector<float>& q, size_t tokens,
                                       size_t past, size_t start, const std::vector<float>& keys,
                                       const std::vector<float>& values, size_t capacity) {
  const size_t d = static_cast<size_t>(s.head_dim), heads = static_cast<size_t>(s.heads);
  const size_t group = heads / static_cast<size_t>(s.kv_heads);
  const double scale = s.scale != 0.0f ? s.scale : 1.0 / std::sqrt(static_cast<double>(d));
  ReferenceAttention ref{std::vector<double>(tokens * heads * d, 0.0), std::vector<double>(tokens * heads, 0.0)};
  for (size_t t = 0; t < tokens; ++t)
    for (size_t h = 0; h < heads; ++h) {
      const size_t kv = h / group, visible = past + t + 1;
      const size_t window = static_cast<size_t>(s.window);
      const size_t first = std::max(start, (window > 0 && visible > start + window) ? visible - window : 0);
      std::vector<double> p(visible, 0.0);
      double max_score = -INFINITY, sum = 0, score_error = 0;
      for (size_t j = first; j < visible; ++j) {
        double dot = 0, magnitude = 0;
        for (size_t i = 0; i < d; ++i) {
          const double term = static_cast<double>(q[(t * heads + h) * d + i]) * keys[(kv * capacity + j) * d + i];
          dot += term;
          magnitude += std::abs(term);
        }
        p[j] = dot * scale;
        // An f32 dot product of d terms in any order is within d * u of the
        // magnitudes summed; the cap's division, tanh and product add a few
        // u of the cap and do not amplify (tanh's slope is at most 1).
        const double cap_error = s.softcap != 0 ? 4 * kUnit * s.softcap : 0.0;
        score_error = std::max(score_error, static_cast<double>(d + 2) * kUnit * magnitude * scale + cap_error);
        if (s.softcap != 0) p[j] = std::tanh(p[j] / s.softcap) * s.softcap;
        max_score = std::max(max_score, p[j]);
      }
      for (size_t j = first; j < visible; ++j) sum += p[j] = std::exp(p[j] - max_score);
      for (size_t j = first; j < visible; ++j)
        for (size_t i = 0; i < d; ++i)
          ref.out[(t * heads + h) * d + i] += p[j] / sum * values[(kv * capacity + j) * d + i];
      // |v| <= 1: a score error e moves the softmax weights by at most 2e in
      // total; exp, the normalisation and the sum over the visible keys add
      // a few u per key.
      ref.tolerance[t * heads + h] = 2 * score_error + 4 * static_cast<double>(visible) * kUnit;
    }
  return ref;
}

TEST_P(BackendOps, StoreKvThenAttentionWithGroupsPaddingAndWindow) {
  const size_t capacity = 40, past = 20, tokens = 4;
  // The default scale 1/sqrt(head_dim); an explicit one (Gemma's
  // query_pre_attn_scalar^-0.5 need not be head_dim's); Gemma 2's score
  // soft-capping, with the default scale and with an explicit scale and a
  // sliding window together. Caps this low bend most scores here.
  const AttentionShape shapes[] = {
      {.heads = 4, .kv_heads = 2, .head_dim = 16},
      {.heads = 6, .kv_heads = 1, .head_dim = 32, .window = 9},
      {.heads = 4, .kv_heads = 2, .head_dim = 16, .scale = 0.7f},
      {.heads = 4, .kv_heads = 2, .head_dim = 16, .softcap = 1.5f},
      {.heads = 6, .kv_heads = 1, .head_dim = 32, .window = 9, .scale = 0.5f, .softcap = 2.5f},
  };
  for (const AttentionShape& shape : shapes) {
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
        ASSERT_NEAR(got[i], want.out[i], want.tolerance[i / d])
            << "heads " << shape.heads << " window " << shape.window << " scale " << shape.scale << " softcap "
            << shape.softcap << " start " << start << " at " << i;
    }
  }
}

// The bit patterns of floats, to compare exactly: == takes -0 for +0 and
// fails NaN against itself.
std::vector<uint32_t> bits(const std::vector<float>& values) {
  std::vector<uint32_t> out(values.size());
  if (!values.empty()) std::memcpy(out.data(), values.data(), values.size() * sizeof(float));
  return out;
}
uint32_t bits(float value) {
  uint32_t out;
  std::memcpy(&out, &value, sizeof out);
  return out;
}

// Values a copy must carry bit for bit and arithmetic would not: negative
// zero, infinities, the smallest subnormal (flushed by FTZ math), a quiet
// NaN with a payload.
std::vector<float> special_values() {
  float nan;
  const uint32_t nan_bits = 0x7fc12345u;
  std::memcpy(&nan, &nan_bits, sizeof nan);
  return {-0.0f, INFINITY, -INFINITY, std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::min(),
          nan};
}

TEST_P(BackendOps, ZeroWritesPositiveZeroAndOnlyThere) {
  // Mixtral's routed output starts at zero and experts add into it; -0 or a
  // NaN left over from the buffer's last use must not survive.
  if (!supported(OpKind::zero, DType::F32)) return;
  const size_t n = 1000, offset = 7, count = 900;
  auto x = random(n);
  const auto special = special_values();
  for (size_t i = 0; i < n; i += 13) x[i] = special[(i / 13) % special.size()];
  DeviceBuffer dx = upload(x);
  // n = 0 writes nothing.
  ops().zero(dx.floats() + offset, 0);
  ASSERT_EQ(bits(download(dx, n)), bits(x));
  ops().zero(dx.floats() + offset, count);
  const auto got = bits(download(dx, n));
  for (size_t i = 0; i < n; ++i) {
    const bool inside = i >= offset && i < offset + count;
    ASSERT_EQ(got[i], inside ? 0u : bits(x[i])) << (inside ? "zeroed" : "untouched") << " at " << i;
  }
}

TEST_P(BackendOps, GatherRowsCopiesListedRowsExactly) {
  if (!supported(OpKind::gather_rows, DType::F32)) return;
  // 1 column, a few, and more than a GPU block's threads (256) with a tail.
  for (const size_t cols : {size_t{1}, size_t{37}, size_t{300}}) {
    const size_t src_rows = 12;
    auto src = random(src_rows * cols);
    const auto special = special_values();
    for (size_t i = 0; i < src.size(); i += 5) src[i] = special[(i / 5) % special.size()];
    // Out of order and repeated (a token routed twice cannot happen, but
    // gather itself allows it), first and last rows included.
    const std::vector<int32_t> rows{4, 0, 11, 4, 9, 2, 2, 7};
    // One spare row after the gathered ones must stay as it was.
    const size_t dst_floats = (rows.size() + 1) * cols;
    const auto before = random(dst_floats);
    DeviceBuffer dsrc = upload(src), ddst = upload(before);
    // No rows, or rows of no columns: nothing is written.
    ops().gather_rows(dsrc.floats(), cols, {}, ddst.floats());
    ops().gather_rows(dsrc.floats(), 0, rows, ddst.floats());
    ASSERT_EQ(bits(download(ddst, dst_floats)), bits(before)) << "cols " << cols;
    ops().gather_rows(dsrc.floats(), cols, rows, ddst.floats());
    const auto got = bits(download(ddst, dst_floats));
    const auto want_src = bits(src), want_before = bits(before);
    for (size_t i = 0; i < rows.size(); ++i)
      for (size_t c = 0; c < cols; ++c)
        ASSERT_EQ(got[i * cols + c], want_src[static_cast<size_t>(rows[i]) * cols + c])
            << "cols " << cols << " row " << i << " (source row " << rows[i] << ") col " << c;
    for (size_t c = 0; c < cols; ++c)
      ASSERT_EQ(got[rows.size() * cols + c], want_before[rows.size() * cols + c]) << "spare row, cols " << cols;
  }
}

// dst + src * scale with the product rounded to f32 before the add, as
// torch's index_add_ of (expert output * routing weight) computes it. The
// volatile keeps the compiler from contracting the two into an FMA.
float scaled_add_reference(float dst, float src, float scale) {
  volatile float product = src * scale;
  return dst + product;
}

TEST_P(BackendOps, AddScaledRowsRoundsTheProductAndTouchesOnlyItsRows) {
  if (!supported(OpKind::add_scaled_rows, DType::F32)) return;
  for (const size_t cols : {size_t{1}, size_t{37}, size_t{300}}) {
    const size_t dst_rows = 10;
    // Distinct, out of order, first and last included; rows 2, 4, 5, 7 and 8
    // are not listed and must keep their bits.
    const std::vector<int32_t> rows{6, 0, 3, 9, 1};
    const std::vector<float> scales{0.71f, -1.3f, 1.0f, 0.0f, 0.2913f};
    const auto before = random(dst_rows * cols, 4.0f), src = random(rows.size() * cols, 4.0f);
    DeviceBuffer ddst = upload(before), dsrc = upload(src);
    // No rows, or rows of no columns: nothing is written.
    ops().add_scaled_rows(ddst.floats(), dsrc.floats(), cols, {}, {});
    ops().add_scaled_rows(ddst.floats(), dsrc.floats(), 0, rows, scales);
    ASSERT_EQ(bits(download(ddst, dst_rows * cols)), bits(before)) << "cols " << cols;
    ops().add_scaled_rows(ddst.floats(), dsrc.floats(), cols, rows, scales);
    const auto got = bits(download(ddst, dst_rows * cols));
    auto want = before;
    size_t fused_differs = 0;
    for (size_t i = 0; i < rows.size(); ++i)
      for (size_t c = 0; c < cols; ++c) {
        float& w = want[static_cast<size_t>(rows[i]) * cols + c];
        const float unfused = scaled_add_reference(w, src[i * cols + c], scales[i]);
        if (bits(unfused) != bits(std::fma(src[i * cols + c], scales[i], w))) ++fused_differs;
        w = unfused;
      }
    const auto want_bits = bits(want);
    for (size_t r = 0; r < dst_rows; ++r)
      for (size_t c = 0; c < cols; ++c)
        ASSERT_EQ(got[r * cols + c], want_bits[r * cols + c])
            << "cols " << cols << " dst row " << r << " col " << c << " want " << want[r * cols + c];
    // The data tells a fused multiply-add from the rounded product (except
    // in the single-column case, where too few elements may not).
    if (cols >= 37) {
      EXPECT_GT(fused_differs, 0u) << "cols " << cols;
    }
  }
}

TEST_P(BackendOps, ToHostReturnsWhatTheQueuedOpsWrote) {
  // Enough work queued ahead of it that a copy which did not wait would see
  // stale values: 16 doublings (exact) of 4 MiB, then a zero, a gather and
  // a scaled add, read back with to_host only.
  if (!supported(OpKind::to_host, DType::F32)) return;
  const size_t n = size_t{1} << 20;
  const auto x = random(n);
  DeviceBuffer dx = upload(x);
  for (int i = 0; i < 16; ++i) ops().scale(dx.floats(), 2.0f, n);
  std::vector<float> host(n, -1.0f);
  ops().to_host(host.data(), dx.floats(), n);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(host[i], x[i] * 65536.0f) << i;

  // A slice from an offset: exactly `count` floats land, the rest of the
  // host array keeps its bits; n = 0 writes nothing.
  const size_t cols = 40, offset = 3 * cols, count = 2 * cols;
  std::vector<float> slice(count + 8, 7.0f);
  ops().to_host(slice.data(), dx.floats(), 0);
  ASSERT_EQ(slice, std::vector<float>(count + 8, 7.0f));
  ops().zero(dx.floats(), n);
  const std::vector<int32_t> rows{5, 1};
  const std::vector<float> scales{0.5f, -3.0f};
  DeviceBuffer dsrc = upload(x);  // read as rows of `cols`
  ops().gather_rows(dsrc.floats(), cols, rows, dx.floats() + offset);
  ops().add_scaled_rows(dx.floats(), dsrc.floats(), cols, std::vector<int32_t>{3, 4}, scales);
  ops().to_host(slice.data(), dx.floats() + offset, count);
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t c = 0; c < cols; ++c) {
      // dx row 3 + i held source row rows[i]; then source row i, scaled, was added.
      const float gathered = x[static_cast<size_t>(rows[i]) * cols + c];
      const float want = scaled_add_reference(gathered, x[i * cols + c], scales[i]);
      ASSERT_EQ(bits(slice[i * cols + c]), bits(want)) << "row " << i << " col " << c;
    }
  for (size_t i = count; i < slice.size(); ++i) ASSERT_EQ(slice[i], 7.0f) << "past the slice at " << i;
  // The rest of dx is the zero's +0.
  std::vector<float> rest(n - offset - count, 1.0f);
  ops().to_host(rest.data(), dx.floats() + offset + count, rest.size());
  for (size_t i = 0; i < rest.size(); ++i) ASSERT_EQ(bits(rest[i]), 0u) << i;
}

TEST_P(BackendOps, FromHostLandsInOrderWithTheQueuedOps) {
  // Queued work writes dx; from_host then overwrites a slice of it and more
  // work reads that slice: the slice must hold the host values at that point
  // (not before the first ops, not after the later ones), and the host array
  // may change at once after the call.
  if (!supported(OpKind::from_host, DType::F32)) return;
  const size_t n = size_t{1} << 20, offset = 40, count = 1000;
  const auto x = random(n);
  DeviceBuffer dx = upload(x);
  for (int i = 0; i < 16; ++i) ops().scale(dx.floats(), 2.0f, n);
  std::vector<float> host(count);
  for (size_t i = 0; i < count; ++i) host[i] = static_cast<float>(i) - 500.0f;
  ops().from_host(dx.floats() + offset, host.data(), count);
  std::fill(host.begin(), host.end(), 99.0f);
  ops().scale(dx.floats(), 0.5f, n);
  ops().from_host(dx.floats(), host.data(), 0);  // n = 0 writes nothing
  std::vector<float> back(n);
  ops().to_host(back.data(), dx.floats(), n);
  for (size_t i = 0; i < n; ++i) {
    const float want = i >= offset && i < offset + count ? (static_cast<float>(i - offset) - 500.0f) * 0.5f
                                                         : x[i] * 32768.0f;
    ASSERT_EQ(back[i], want) << i;
  }
}

// A block of random bytes in `layout`: any code, zero and group the layout
// can hold, scales of both signs in their dtype (FP8: every code but NaN).
std::vector<uint8_t> random_quant_block(const QuantLayout& l, int64_t rows, int64_t cols, std::mt19937& rng) {
  const QuantPlanes p = quant_planes(l, rows, cols);
  std::vector<uint8_t> block(p.total);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(-0.1f, 0.1f);
  for (size_t i = 0; i < p.scales; ++i) block[i] = static_cast<uint8_t>(byte(rng));
  const bool fp8 = l.kind == QuantKind::fp8_block;
  if (fp8)
    for (size_t i = 0; i < p.scales; ++i)
      if ((block[i] & 0x7F) == 0x7F) block[i] = 0x3C;
  const int64_t scale_rows = fp8 ? (rows + l.block_rows - 1) / l.block_rows : rows;
  const DType scale_dtype = fp8 ? DType::F32 : l.scale_dtype;
  for (int64_t i = 0; i < scale_rows * p.groups; ++i) {
    uint8_t* at = block.data() + p.scales + static_cast<size_t>(i) * dtype_size(scale_dtype);
    const float v = scale(rng);
    if (scale_dtype == DType::F32) {
      std::memcpy(at, &v, 4);
    } else {
      const uint16_t h = scale_dtype == DType::BF16 ? cpu::f32_to_bf16(v) : cpu::f32_to_f16(v);
      std::memcpy(at, &h, 2);
    }
  }
  if (fp8) return block;
  for (size_t i = p.zeros; i < p.zeros + static_cast<size_t>(rows) * p.zero_row; ++i)
    block[i] = static_cast<uint8_t>(byte(rng));
  if (l.group_index) {
    std::uniform_int_distribution<int32_t> group(0, static_cast<int32_t>(p.groups - 1));
    for (int64_t c = 0; c < cols; ++c) {
      const int32_t g = group(rng);
      std::memcpy(block.data() + p.group_index + static_cast<size_t>(c) * 4, &g, 4);
    }
  }
  return block;
}

// The layouts of quant/quant_layout.h as the formats fill them: in-situ,
// GPTQ (v1 zero offset, act-order group index), AWQ, per-row 8-bit with F32
// scales, and FP8 blocks that do not divide the shape.
std::vector<QuantLayout> quant_layouts() {
  using enum DType;
  return {
      {.bits = 4, .group_size = 32, .scale_dtype = F16, .stored_zeros = false, .name = "int4 g32"},
      {.bits = 8, .group_size = 32, .scale_dtype = F16, .stored_zeros = false, .name = "int8 g32"},
      {.bits = 4, .group_size = 64, .scale_dtype = F16, .zero_offset = 1, .group_index = true,
       .name = "GPTQ-v1 int4 g64 act-order"},
      {.bits = 4, .group_size = 32, .scale_dtype = BF16, .name = "AWQ-like int4 g32 bf16"},
      {.bits = 8, .group_size = 0, .scale_dtype = F32, .name = "int8 per row f32"},
      {.kind = QuantKind::fp8_block, .block_rows = 16, .block_cols = 48, .name = "fp8 16x48"},
  };
}

TEST_P(BackendOps, QuantizedMatmulMultipliesTheDequantizedMatrix) {
  // Whole matrices and a view of some rows of a block (a fused projection's
  // part), for decode and prompt widths. The reference is the host's exact
  // dequantization (quant_layout.h), tested against the libraries' packing
  // in tests/unit/test_quant_layouts.cpp.
  const int64_t rows = 37, cols = 128;
  for (const QuantLayout& layout : quant_layouts()) {
    if (!ops().supports(OpKind::matmul, layout)) {
      std::printf("[ not supported ] %s: matmul with %s weights\n", GetParam().c_str(), layout.name.c_str());
      continue;
    }
    const std::vector<uint8_t> block = random_quant_block(layout, rows, cols, rng_);
    std::vector<float> dequantized(static_cast<size_t>(rows * cols));
    dequantize_rows(layout, block.data(), rows, cols, 0, rows, dequantized.data());
    DeviceBuffer dw = upload(block);
    const MatrixView whole{DType::F32, dw.data(), rows, cols, &layout};
    for (const auto& [first, count] : {std::pair<int64_t, int64_t>{0, rows}, {5, 20}})
    for (const size_t n : {size_t{1}, size_t{3}, size_t{17}}) {
      const auto x = random(n * static_cast<size_t>(cols));
      const auto bias = random(static_cast<size_t>(count));
      DeviceBuffer dx = upload(x), dbias = upload(bias);
      DeviceBuffer dout(*backend_.device, n * static_cast<size_t>(count) * 4, "out");
      const MatmulOutput output[] = {{whole.rows_view(first, count), dbias.floats(), dout.floats()}};
      ops().matmul(dx.floats(), n, output);
      const auto got = download(dout, n * static_cast<size_t>(count));
      for (size_t i = 0; i < n; ++i)
        for (int64_t r = 0; r < count; ++r) {
          double want = bias[static_cast<size_t>(r)], magnitude = 0.0;
          for (int64_t k = 0; k < cols; ++k) {
            const double product = static_cast<double>(x[i * static_cast<size_t>(cols) + static_cast<size_t>(k)]) *
                                   dequantized[static_cast<size_t>((first + r) * cols + k)];
            want += product;
            magnitude += std::abs(product);
          }
          // f32 accumulation in any order, as for plain weights.
          ASSERT_NEAR(got[i * static_cast<size_t>(count) + static_cast<size_t>(r)], want, 2e-6 * magnitude + 1e-6)
              << layout.name << " rows " << first << "+" << count << " n=" << n << " [" << i << "," << r << "]";
        }
    }
  }
}

TEST_P(BackendOps, QuantizedEmbeddingIsTheDequantizedRows) {
  const int64_t vocab = 50, dim = 96;
  const std::vector<int32_t> ids{3, 0, 49, 3, 17};
  for (const QuantLayout& layout : quant_layouts()) {
    if (!ops().supports(OpKind::embedding, layout)) {
      std::printf("[ not supported ] %s: embedding with %s weights\n", GetParam().c_str(), layout.name.c_str());
      continue;
    }
    const std::vector<uint8_t> block = random_quant_block(layout, vocab, dim, rng_);
    std::vector<float> dequantized(static_cast<size_t>(vocab * dim));
    dequantize_rows(layout, block.data(), vocab, dim, 0, vocab, dequantized.data());
    DeviceBuffer dt = upload(block), dout(*backend_.device, ids.size() * static_cast<size_t>(dim) * 4, "out");
    ops().embedding(MatrixView{DType::F32, dt.data(), vocab, dim, &layout}, ids, dout.floats());
    const auto got = download(dout, ids.size() * static_cast<size_t>(dim));
    for (size_t i = 0; i < ids.size(); ++i)
      for (int64_t c = 0; c < dim; ++c) {
        const float want = dequantized[static_cast<size_t>(ids[i] * dim + c)];
        // Bit for bit, NaN included (FP8 has none here).
        ASSERT_EQ(0, std::memcmp(&got[i * static_cast<size_t>(dim) + static_cast<size_t>(c)], &want, 4))
            << layout.name << " id " << ids[i] << " col " << c;
      }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendOps, ::testing::Values("cpu", "sim", "cuda"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace strata
