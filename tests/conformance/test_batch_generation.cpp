// Batched generation: prompts of different lengths run together, left-padded,
// or in ragged steps where each row has its own length, and every row
// computes exactly what it computes alone — the same logits, bit for bit, and
// the same greedy ids — on the CPU and under a device map that streams
// layers from disk to a simulated accelerator.
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

  // Rows of one session at different lengths step together (ragged steps:
  // some read prompts, some decode, some sit out), and each segment's logits
  // equal, bit for bit, those of its row fed the same tokens alone.
  void expect_ragged_rows_match_alone(const ModelOptions& options) {
    auto model = Model::load(dir_, options);
    const size_t vocab = static_cast<size_t>(model->config().vocab_size);
    const std::vector<int32_t>& a = prompts_[0];
    const std::vector<int32_t>& b = prompts_[1];
    const std::vector<int32_t>& c = prompts_[2];
    const std::vector<int32_t> b1(b.begin(), b.begin() + 5), b2(b.begin() + 5, b.end());
    struct Step {
      std::vector<StepSegment> segments;
      std::vector<int32_t> ids;
    };
    const std::vector<Step> steps = {
        {{{0, 3}, {2, 5}}, concat({a, b1})},
        {{{1, 6}, {2, 3}, {0, 1}}, concat({c, b2, {a[0]}})},
        {{{2, 1}, {0, 1}, {1, 1}}, {b[0], a[1], c[0]}},
    };
    Session ragged(*model, 3, 16);
    std::vector<std::unique_ptr<Session>> alone;
    for (int r = 0; r < 3; ++r) alone.push_back(std::make_unique<Session>(*model, 1, 16));
    for (size_t s = 0; s < steps.size(); ++s) {
      const auto together = ragged.feed_segments(steps[s].ids, steps[s].segments);
      const std::vector<float> copy(together.begin(), together.end());
      size_t first = 0;
      for (size_t i = 0; i < steps[s].segments.size(); ++i) {
        const StepSegment& segment = steps[s].segments[i];
        const auto ids = std::span<const int32_t>(steps[s].ids).subspan(first, static_cast<size_t>(segment.tokens));
        first += ids.size();
        const auto single = alone[static_cast<size_t>(segment.row)]->feed(ids, segment.tokens);
        EXPECT_EQ(0, std::memcmp(single.data(), copy.data() + i * vocab, vocab * sizeof(float)))
            << "step " << s << " row " << segment.row;
      }
    }
    EXPECT_EQ(ragged.length(0), 5);
    EXPECT_EQ(ragged.length(2), 9);
    ragged.reset_row(2);
    EXPECT_EQ(ragged.length(2), 0);
    EXPECT_EQ(ragged.length(1), 7);
  }

  // The embeddings and head on sim:0, the layers and final norm streamed
  // from disk to it, for three rows of 16 tokens.
  ModelOptions streaming(const test::TempDir& offload) const {
    ModelOptions o = test::with_threads(2);
    const test::FixtureModules m = test::fixture_modules(dir_);
    o.device_map = R"({"": "disk", ")" + m.head + R"(": 0)";
    for (const std::string& embedding : m.embeddings) o.device_map += R"(, ")" + embedding + R"(": 0)";
    o.device_map += "}";
    o.sim_devices = "1x8MiB";
    o.offload_folder = offload.path();
    o.batch = 3;
    o.ctx = 16;
    return o;
  }

  static std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
    std::vector<int32_t> all;
    for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
    return all;
  }

  fs::path dir_;
  std::vector<std::vector<int32_t>> prompts_;
};

TEST_P(BatchGeneration, RowsComputeWhatTheyComputeAlone) { expect_rows_match_alone(test::with_threads(2)); }

TEST_P(BatchGeneration, RowsComputeWhatTheyComputeAloneWhenStreaming) {
  test::TempDir offload;
  expect_rows_match_alone(streaming(offload));
}

TEST_P(BatchGeneration, RaggedStepsComputeWhatRowsComputeAlone) {
  expect_ragged_rows_match_alone(test::with_threads(2));
}

TEST_P(BatchGeneration, RaggedStepsComputeWhatRowsComputeAloneWhenStreaming) {
  test::TempDir offload;
  expect_ragged_rows_match_alone(streaming(offload));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BatchGeneration, ::testing::ValuesIn(test::fixture_model_names()),
                         test::ParamName());

}  // namespace
}  // namespace strata
