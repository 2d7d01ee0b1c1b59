// Fidelity against Hugging Face transformers: every fixture model's logits
// (max |diff| <= 1e-4, the fixtures README's float32 threshold) and greedy ids
// (exact), computed through the public API.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "format/safetensors.h"
#include "strata/generate.h"
#include "strata/model.h"
#include "strata/tokenizer.h"
#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using test::read_json;

using test::Reference;
using test::read_reference;

class FixtureModel : public ::testing::TestWithParam<std::string> {
 protected:
  fs::path dir() const { return test::fixtures_dir() / "models" / GetParam(); }
};

TEST_P(FixtureModel, LogitsMatchTransformers) {
  STRATA_REQUIRE_FIXTURES();
  const Reference ref = read_reference(dir());
  auto model = Model::load(dir(), test::with_threads(2));
  ASSERT_EQ(model->config().vocab_size, ref.vocab);
  // One full forward per row, as transformers' model(input_ids) does.
  double max_diff = 0;
  for (int64_t r = 0; r < ref.rows; ++r) {
    const auto ids = std::span<const int32_t>(ref.input_ids).subspan(static_cast<size_t>(r * ref.tokens),
                                                                     static_cast<size_t>(ref.tokens));
    const auto logits = model->logits(ids, 1, ref.tokens);
    ASSERT_EQ(logits.size(), static_cast<size_t>(ref.tokens * ref.vocab));
    for (size_t i = 0; i < logits.size(); ++i) {
      const float expected = ref.logits[static_cast<size_t>(r * ref.tokens * ref.vocab) + i];
      ASSERT_TRUE(std::isfinite(logits[i]));
      max_diff = std::max(max_diff, std::abs(static_cast<double>(logits[i]) - expected));
    }
  }
  RecordProperty("max_abs_diff", std::to_string(max_diff));
  EXPECT_LE(max_diff, 1e-4) << GetParam();
}

TEST_P(FixtureModel, BatchedForwardEqualsPerRowForward) {
  STRATA_REQUIRE_FIXTURES();
  const Reference ref = read_reference(dir());
  auto model = Model::load(dir(), test::with_threads(2));
  const auto batched = model->logits(ref.input_ids, ref.rows, ref.tokens);
  for (int64_t r = 0; r < ref.rows; ++r) {
    const auto ids = std::span<const int32_t>(ref.input_ids).subspan(static_cast<size_t>(r * ref.tokens),
                                                                     static_cast<size_t>(ref.tokens));
    const auto single = model->logits(ids, 1, ref.tokens);
    // The kernels reduce every element in the same order whatever the batch
    // shape, so batching changes no bit.
    ASSERT_EQ(0, std::memcmp(single.data(), batched.data() + r * ref.tokens * ref.vocab,
                             single.size() * sizeof(float)))
        << "row " << r;
  }
}

TEST_P(FixtureModel, GreedyGenerationMatchesTransformers) {
  STRATA_REQUIRE_FIXTURES();
  const json greedy = read_json(dir() / "reference.json").at("greedy");
  const auto prompt = greedy.at("prompt_ids").get<std::vector<int32_t>>();
  const auto expected = greedy.at("new_ids").get<std::vector<int32_t>>();
  auto model = Model::load(dir(), test::with_threads(2));
  GenerateOptions options;
  options.max_new_tokens = greedy.at("max_new_tokens").get<int64_t>();
  options.eos_ids = model->generation_config().eos_token_ids;
  const GenerateResult result = generate(*model, prompt, options);
  EXPECT_EQ(result.new_ids, expected);
  EXPECT_EQ(result.stopped_on_eos, greedy.at("stopped_on_eos").get<bool>());
}

TEST_P(FixtureModel, ResultsDoNotDependOnThreadCount) {
  STRATA_REQUIRE_FIXTURES();
  const Reference ref = read_reference(dir());
  const auto ids = std::span<const int32_t>(ref.input_ids).first(static_cast<size_t>(ref.tokens));
  auto one = Model::load(dir(), test::with_threads(1));
  auto three = Model::load(dir(), test::with_threads(3));
  const auto a = one->logits(ids, 1, ref.tokens);
  const auto b = three->logits(ids, 1, ref.tokens);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(Transformers, FixtureModel, ::testing::ValuesIn(test::fixture_model_names()), test::ParamName());

TEST(Sharding, ShardedAndSingleFileLogitsAreBitIdentical) {
  STRATA_REQUIRE_FIXTURES();
  const Reference ref = read_reference(test::fixtures_dir() / "models" / "stories260k");
  auto single = Model::load(test::fixtures_dir() / "models" / "stories260k", test::with_threads(2));
  auto sharded = Model::load(test::fixtures_dir() / "models" / "stories260k-sharded", test::with_threads(2));
  const auto a = single->logits(ref.input_ids, ref.rows, ref.tokens);
  const auto b = sharded->logits(ref.input_ids, ref.rows, ref.tokens);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

TEST(Stories260k, GreedyFromBosMatchesLlama2c) {
  STRATA_REQUIRE_FIXTURES();
  const fs::path dir = test::fixtures_dir() / "models" / "stories260k";
  const json ref = read_json(dir / "llama2c_reference.json");
  const auto all_ids = ref.at("generated_ids").get<std::vector<int32_t>>();
  const auto prompt = ref.at("prompt_ids").get<std::vector<int32_t>>();
  auto model = Model::load(dir, test::with_threads(2));
  GenerateOptions options;
  options.max_new_tokens = static_cast<int64_t>(all_ids.size() - prompt.size());
  const GenerateResult result = generate(*model, prompt, options);
  std::vector<int32_t> produced(prompt);
  produced.insert(produced.end(), result.new_ids.begin(), result.new_ids.end());
  EXPECT_EQ(produced, all_ids);
  const Tokenizer tokenizer = Tokenizer::from_dir(dir);
  EXPECT_EQ(tokenizer.decode(produced, true), ref.at("text").get<std::string>());
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

// A tied model whose file also holds an lm_head.weight (zeros here): the head
// is the embedding, as transformers' tie_weights() makes it, so the logits
// are those of the fixture without it.
TEST(TiedHead, AStrayLmHeadWeightIsIgnored) {
  STRATA_REQUIRE_FIXTURES();
  const fs::path source = test::fixtures_dir() / "models" / "qwen2-tiny-random";
  test::TempDir tmp;
  SafetensorsFile file(source / "model.safetensors");
  std::vector<TensorToWrite> tensors;
  for (const auto& t : file.tensors()) tensors.push_back({t.name, t.dtype, t.shape, file.data(t)});
  const auto& embed = *std::find_if(file.tensors().begin(), file.tensors().end(),
                                    [](const TensorInfo& t) { return t.name == "model.embed_tokens.weight"; });
  const std::vector<uint8_t> zeros(embed.nbytes, 0);
  tensors.push_back({"lm_head.weight", embed.dtype, embed.shape, zeros});
  write_safetensors(tmp.path() / "model.safetensors", tensors);
  fs::copy_file(source / "config.json", tmp.path() / "config.json");

  const Reference ref = read_reference(source);
  const auto want = Model::load(source, test::with_threads(1))->logits(ref.input_ids, ref.rows, ref.tokens);
  const auto got = Model::load(tmp.path(), test::with_threads(1))->logits(ref.input_ids, ref.rows, ref.tokens);
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace strata
