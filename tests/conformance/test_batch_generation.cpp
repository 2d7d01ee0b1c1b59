// Batched generation: prompts of different lengths run together, left-padded,
// and every row computes exactly what it computes alone — the same logits,
// bit for bit, and the same greedy ids — on the CPU and under a device map
// that streams layers from disk to a simulated accelerator.
#include <gtest/gtest.h>

#include <cstring>

#include "strata/generate.h"
#include "strata/model.h"
#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

class BatchGeneration : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    STRATA_REQUIRE_FIXTURES();
    dir_ = test::fixtures_dir() / "models" / GetParam();
    const test::Reference ref = test::read_reference(dir_);
    // Three prompts of different lengths, cut from the reference rows.
    const auto& ids = ref.input_ids;
    const auto row = [&](int64_t r, size_t n) {
      return std::vector<int32_t>(ids.begin() + r * ref.tokens, ids.begin() + r * ref.tokens + static_cast<long>(n));
    };
    prompts_ = {row(0, 3), row(1, 8), row(0, 6)};
  }

  void expect_rows_match_alone(const ModelOptions& options) {
    auto model = Model::load(dir_, options);
    const size_t vocab = static_cast<size_t>(model->config().vocab_size);
    Session batch(*model, static_cast<int64_t>(prompts_.size()), 8);
    const auto together = batch.feed_prompts(prompts_);
    GenerateOptions g;
    g.max_new_tokens = 6;
    const BatchGenerateResult batched = generate_batch(*model, prompts_, g);
    ASSERT_EQ(batched.rows.size(), prompts_.size());
    for (size_t r = 0; r < prompts_.size(); ++r) {
      SCOPED_TRACE("row " + std::to_string(r));
      Session alone(*model, 1, 8);
      const auto single = alone.feed(prompts_[r], static_cast<int64_t>(prompts_[r].size()));
      EXPECT_EQ(0, std::memcmp(single.data(), together.data() + r * vocab, vocab * sizeof(float)));
      EXPECT_EQ(batched.rows[r].new_ids, generate(*model, prompts_[r], g).new_ids);
    }
  }

  fs::path dir_;
  std::vector<std::vector<int32_t>> prompts_;
};

TEST_P(BatchGeneration, RowsComputeWhatTheyComputeAlone) { expect_rows_match_alone(test::with_threads(2)); }

TEST_P(BatchGeneration, RowsComputeWhatTheyComputeAloneWhenStreaming) {
  test::TempDir offload;
  ModelOptions o = test::with_threads(2);
  // The embeddings and head on sim:0, the layers and final norm streamed from disk to it.
  const test::FixtureModules m = test::fixture_modules(dir_);
  o.device_map = R"({"": "disk", ")" + m.head + R"(": 0)";
  for (const std::string& embedding : m.embeddings) o.device_map += R"(, ")" + embedding + R"(": 0)";
  o.device_map += "}";
  o.sim_devices = "1x8MiB";
  o.offload_folder = offload.path();
  o.batch = 3;
  o.ctx = 16;
  expect_rows_match_alone(o);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BatchGeneration, ::testing::ValuesIn(test::fixture_model_names()),
                         test::ParamName());

}  // namespace
}  // namespace strata
