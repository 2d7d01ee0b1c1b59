// The fixture models on a GPU: logits within the fixtures' float32 threshold
// of transformers (1e-4, for f32, bf16, f16 and quantized weights alike: the
// GPU widens half-precision weights and dequantizes quantized ones exactly,
// and computes in float32, as the CPU does),
// greedy ids equal to the CPU's, and the same with part of the model on the
// host tiers streamed to the GPU. Skips, saying why, where no GPU is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "backend/cuda/cuda_backend.h"
#include "strata/model.h"
#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

// Whether a GPU is usable; the reason when not.
bool gpu_usable(std::string& why) {
  static std::string reason;
  static const bool usable = [] { return !cuda::open_devices(0, reason).empty(); }();
  why = reason;
  return usable;
}

#define STRATA_REQUIRE_GPU()                                          \
  do {                                                                \
    std::string why_;                                                 \
    if (!gpu_usable(why_)) STRATA_SKIP_WITHOUT_GPU("no GPU here: " << why_); \
  } while (0)

class CudaFidelity : public ::testing::TestWithParam<std::string> {
 protected:
  fs::path dir() const { return test::fixtures_dir() / "models" / GetParam(); }

  // Max |logit - transformers| over every row, one forward per row.
  double max_diff_to_transformers(Model& model, const test::Reference& ref) {
    double max_diff = 0;
    for (int64_t r = 0; r < ref.rows; ++r) {
      const auto ids = std::span<const int32_t>(ref.input_ids).subspan(static_cast<size_t>(r * ref.tokens),
                                                                       static_cast<size_t>(ref.tokens));
      const auto logits = model.logits(ids, 1, ref.tokens);
      for (size_t i = 0; i < logits.size(); ++i) {
        EXPECT_TRUE(std::isfinite(logits[i]));
        max_diff = std::max(max_diff, std::abs(static_cast<double>(logits[i]) -
                                               ref.logits[static_cast<size_t>(r * ref.tokens * ref.vocab) + i]));
      }
    }
    return max_diff;
  }
};

TEST_P(CudaFidelity, AllOnTheGpuMatchesTransformers) {
  STRATA_REQUIRE_FIXTURES();
  STRATA_REQUIRE_GPU();
  const test::ScopedGpus gpus;
  const test::Reference ref = test::read_reference(dir());
  ModelOptions o = test::with_threads(2);
  o.device_map = R"({"": 0})";
  auto model = Model::load(dir(), o);
  ASSERT_EQ(model->device_map_json().find("cpu"), std::string::npos) << model->device_map_json();
  const double diff = max_diff_to_transformers(*model, ref);
  RecordProperty("max_abs_diff", std::to_string(diff));
  EXPECT_LE(diff, 1e-4) << GetParam();
}

TEST_P(CudaFidelity, AutoMapWithHostAndDiskTiersMatchesTransformers) {
  STRATA_REQUIRE_FIXTURES();
  STRATA_REQUIRE_GPU();
  const test::ScopedGpus gpus;
  const test::Reference ref = test::read_reference(dir());
  test::TempDir tmp;
  // Layer 0 and the embedding on the GPU, the rest on cpu and disk, streamed to it.
  ModelOptions o = test::with_threads(2);
  o.device_map = R"({"model.embed_tokens": 0, "model.layers.0": 0, "model.layers.1": "cpu", "": "disk"})";
  o.offload_folder = tmp.path() / "offload";
  auto model = Model::load(dir(), o);
  const double diff = max_diff_to_transformers(*model, ref);
  RecordProperty("max_abs_diff", std::to_string(diff));
  EXPECT_LE(diff, 1e-4) << GetParam();
}

TEST_P(CudaFidelity, GreedyIdsEqualTheCpus) {
  STRATA_REQUIRE_FIXTURES();
  STRATA_REQUIRE_GPU();
  const test::Reference ref = test::read_reference(dir());
  auto cpu = Model::load(dir(), test::with_threads(2));
  const auto cpu_logits = cpu->logits(ref.input_ids, ref.rows, ref.tokens);
  const test::ScopedGpus gpus;
  ModelOptions o = test::with_threads(2);
  o.device_map = R"({"": 0})";
  auto gpu = Model::load(dir(), o);
  const auto gpu_logits = gpu->logits(ref.input_ids, ref.rows, ref.tokens);
  ASSERT_EQ(gpu_logits.size(), cpu_logits.size());
  const auto vocab = static_cast<std::ptrdiff_t>(ref.vocab);
  for (std::ptrdiff_t p = 0; p < static_cast<std::ptrdiff_t>(gpu_logits.size()) / vocab; ++p) {
    const auto cpu_row = cpu_logits.begin() + p * vocab, gpu_row = gpu_logits.begin() + p * vocab;
    const auto cpu_id = std::max_element(cpu_row, cpu_row + vocab) - cpu_row;
    const auto gpu_id = std::max_element(gpu_row, gpu_row + vocab) - gpu_row;
    // Equal, unless the top two are a tie within float32 summation-order noise.
    if (gpu_id != cpu_id) {
      EXPECT_NEAR(cpu_row[gpu_id], cpu_row[cpu_id], 1e-5) << "position " << p;
    }
  }
}

// Quantized layouts have no CUDA kernels yet (the load refuses them there).
INSTANTIATE_TEST_SUITE_P(Fixtures, CudaFidelity, ::testing::ValuesIn(test::fixture_model_names()),
                         test::ParamName());

}  // namespace
}  // namespace strata
