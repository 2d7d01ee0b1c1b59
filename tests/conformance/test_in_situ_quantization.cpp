// --quantize int8|int4 on the float fixtures: the mean KL divergence from
// transformers' float32 logits stays within twice that of plain
// round-to-nearest group-32 quantization with float16 scales (issue 14's
// target), measured here on the same inputs (`-rtn`); the quantized weights
// are written once to the offload folder and reused; and the logits do not
// depend on the device map (the quantized bytes stream like any others).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "core/half.h"
#include "quant/quant_layout.h"
#include "quant/quantize.h"
#include "runtime/kld.h"
#include "strata/model.h"
#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

fs::path model_dir(const std::string& name) { return test::fixtures_dir() / "models" / name; }

class InSituQuantization : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<Model> load(const std::string& quantize, const std::string& device_map = R"({"": "cpu"})",
                              const std::string& sims = "") const {
    ModelOptions o = test::with_threads(2);
    o.quantize = quantize;
    o.device_map = device_map;
    o.sim_devices = sims;
    o.offload_folder = offload_.path() / quantize;
    o.ctx = ref_.tokens;
    o.batch = ref_.rows;
    o.all_logits = true;
    return Model::load(model_dir(GetParam()), o);
  }
  KldStats kld(const std::string& quantize) const {
    const auto logits = load(quantize)->logits(ref_.input_ids, ref_.rows, ref_.tokens);
    return kl_divergence(ref_.logits, logits, static_cast<size_t>(ref_.vocab));
  }
  void SetUp() override {
    STRATA_REQUIRE_FIXTURES();
    ref_ = test::read_reference(model_dir(GetParam()));
  }

  test::Reference ref_;
  test::TempDir offload_;
};

TEST_P(InSituQuantization, KldWithinTwiceRoundToNearest) {
  for (const char* bits : {"int8", "int4"}) {
    const KldStats ours = kld(bits), rtn = kld(std::string(bits) + "-rtn");
    // The table in bench/README.md comes from these lines.
    std::printf("[ kld ] %-24s %s mean %.3g max %.3g top-1 %.3f | rtn mean %.3g max %.3g top-1 %.3f\n",
                GetParam().c_str(), bits, ours.mean, ours.max, ours.top1_agreement, rtn.mean, rtn.max,
                rtn.top1_agreement);
    EXPECT_LE(ours.mean, 2 * rtn.mean) << bits;
    EXPECT_GT(ours.mean, 0.0) << bits << ": nothing was quantized";
  }
}

TEST_P(InSituQuantization, HoldsAQuarterOfTheBytesAndReusesTheFolder) {
  const auto full = load("");
  const auto first = load("int4");
  EXPECT_FALSE(first->offload_folder().empty());
  const auto again = load("int4");
  const auto logits = again->logits(ref_.input_ids, ref_.rows, ref_.tokens);
  EXPECT_EQ(first->logits(ref_.input_ids, ref_.rows, ref_.tokens), logits);
  // Everything but the embeddings, the head and the routers is quantized: 4
  // bits and a float16 scale per 32 weights, where the fixture stores 16 or 32 bits.
  const double ratio = static_cast<double>(again->weight_bytes_per_token()) / static_cast<double>(full->weight_bytes_per_token());
  EXPECT_LT(ratio, 0.6);
  std::printf("[ bytes ] %-24s int4 reads %.3f of the stored bytes per token\n", GetParam().c_str(), ratio);
  if (const uint64_t stored = full->expert_stats().expert_bytes; stored > 0) {
    const double experts = static_cast<double>(again->expert_stats().expert_bytes) / static_cast<double>(stored);
    std::printf("[ bytes ] %-24s int4 experts hold %.3f of their stored bytes\n", GetParam().c_str(), experts);
    EXPECT_LT(experts, 0.3);
  }
}

TEST_P(InSituQuantization, LogitsDoNotDependOnTheMap) {
  const test::FixtureModules m = test::fixture_modules(model_dir(GetParam()));
  const auto cpu = load("int8")->logits(ref_.input_ids, ref_.rows, ref_.tokens);
  const std::string spread = R"({"": "cpu", ")" + m.layers.front() + R"(": 0, ")" + m.layers.back() + R"(": "disk"})";
  EXPECT_EQ(cpu, load("int8", spread, "1x64MiB")->logits(ref_.input_ids, ref_.rows, ref_.tokens));
}

// The float fixtures, mixtures of experts included (their routed experts
// are quantized too, and stream from the offload folder).
INSTANTIATE_TEST_SUITE_P(Fixtures, InSituQuantization,
                         ::testing::Values("stories260k", "llama-tiny-random", "llama-tiny-random-bf16",
                                           "qwen2-tiny-random", "qwen3-tiny-random", "gemma-tiny-random",
                                           "gemma2-tiny-random", "phi3-tiny-random", "gpt2-tiny-random",
                                           "mixtral-tiny-random", "qwen2moe-tiny-random", "qwen3moe-tiny-random"),
                         test::ParamName());

// The scale search never does worse than round-to-nearest on a group (it is
// one of its candidates), and round-to-nearest rounds each weight to the
// nearest level of scale max|w| / (2^(bits-1) - 1), the scale as float16.
TEST(QuantizeRows, SearchNeverLosesToRoundToNearest) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  const int64_t rows = 8, cols = 96;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (float& v : w) v = normal(rng);
  w[5] = 0.9f;  // an outlier
  for (const int bits : {8, 4}) {
    double sse_search = 0, sse_rtn = 0;
    for (const QuantizeMethod method : {QuantizeMethod::search, QuantizeMethod::round_to_nearest}) {
      const InSituQuant q{bits, method};
      const QuantLayout layout = in_situ_layout(q);
      std::vector<uint8_t> held(quant_bytes(layout, rows, cols));
      quantize_rows(q, layout, w.data(), rows, cols, 0, rows, held.data());
      std::vector<float> back(w.size());
      dequantize_rows(layout, held.data(), rows, cols, 0, rows, back.data());
      double sse = 0;
      for (size_t i = 0; i < w.size(); ++i) sse += (w[i] - back[i]) * (w[i] - back[i]);
      (method == QuantizeMethod::search ? sse_search : sse_rtn) = sse;
      if (method == QuantizeMethod::round_to_nearest) {
        // Row 0's first group by hand.
        float amax = 0;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(w[static_cast<size_t>(i)]));
        const float scale = f16_to_f32(f32_to_f16(amax / static_cast<float>((1 << (bits - 1)) - 1)));
        for (int i = 0; i < 32; ++i)
          EXPECT_EQ(back[static_cast<size_t>(i)], scale * std::nearbyint(w[static_cast<size_t>(i)] / scale)) << i;
      }
    }
    EXPECT_LE(sse_search, sse_rtn) << bits;
    EXPECT_LT(sse_search, 0.95 * sse_rtn) << bits << ": the search should gain something on normal weights";
  }
}

}  // namespace
}  // namespace strata
