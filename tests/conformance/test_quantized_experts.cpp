// Pre-quantized routed experts, as GPTQ mixture-of-experts checkpoints store
// them (Qwen3-30B-A3B-GPTQ-Int4 and the like): each MoE fixture's expert
// matrices are replaced by GPTQ 4-bit matrices packed here (random codes,
// zeros and float16 scales), beside the same model with those matrices
// dequantized exactly to float32. strata holds the experts as stored on every
// tier and computes the float model's logits bit for bit; spread over sim:0,
// cpu and disk, it gives the all-CPU run's logits bit for bit.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "format/safetensors.h"
#include "models/architecture.h"
#include "quant_packing.h"
#include "strata/model.h"
#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

fs::path model_dir(const std::string& name) { return test::fixtures_dir() / "models" / name; }

constexpr int kBits = 4;
constexpr int kGroup = 32;

// Writes `fixture` twice: into gptq_dir with its routed experts as GPTQ
// tensors, and into float_dir with those experts dequantized to float32.
void write_models(const fs::path& fixture, const fs::path& gptq_dir, const fs::path& float_dir) {
  const Checkpoint source = Checkpoint::open(fixture);
  const ModelConfig config = ModelConfig::from_file(fixture / "config.json");
  std::unordered_set<std::string> experts;
  for (const ExpertSpec& e : model_experts(config))
    for (const WeightSpec* w : e.weights()) experts.insert(w->name);

  std::vector<test::Tensors> packed;
  std::vector<std::vector<float>> dequantized;
  std::vector<TensorToWrite> gptq, plain;
  uint32_t seed = 1;
  for (const TensorInfo& t : source.tensors()) {
    if (!experts.count(t.name)) {
      gptq.push_back({t.name, t.dtype, t.shape, source.data(t)});
      plain.push_back(gptq.back());
      continue;
    }
    test::Matrix m = test::random_matrix(t.shape[0], t.shape[1], kBits, kGroup, false, seed++);
    // Scales that keep the weights near the fixture's own (|w| <= 0.05).
    for (size_t i = 0; i < m.scale.size(); ++i) m.scale[i] = f32_to_f16(0.0005f + 0.0001f * static_cast<float>(i % 30));
    packed.push_back(test::gptq_tensors(m, /*v1=*/true, t.name.substr(0, t.name.size() - std::string(".weight").size())));
    std::vector<float>& w = dequantized.emplace_back();
    for (int64_t r = 0; r < m.rows; ++r)
      for (int64_t c = 0; c < m.cols; ++c) w.push_back(m.expected(r, c));
    plain.push_back({t.name, DType::F32, t.shape,
                     {reinterpret_cast<const uint8_t*>(w.data()), w.size() * sizeof(float)}});
  }
  for (const test::Tensors& p : packed)
    for (size_t i = 0; i < p.names.size(); ++i) gptq.push_back({p.names[i], p.dtypes[i], p.shapes[i], p.data[i]});

  Json json = test::read_json(fixture / "config.json");
  fs::create_directories(float_dir);
  write_safetensors(float_dir / "model.safetensors", plain);
  std::ofstream(float_dir / "config.json") << json.dump(1);
  json["quantization_config"] = {{"quant_method", "gptq"}, {"bits", kBits},       {"group_size", kGroup},
                                 {"desc_act", false},      {"sym", false},        {"checkpoint_format", "gptq"}};
  fs::create_directories(gptq_dir);
  write_safetensors(gptq_dir / "model.safetensors", gptq);
  std::ofstream(gptq_dir / "config.json") << json.dump(1);
}

class QuantizedExperts : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    STRATA_REQUIRE_FIXTURES();
    ref_ = test::read_reference(model_dir(GetParam()));
    config_ = ModelConfig::from_file(model_dir(GetParam()) / "config.json");
    write_models(model_dir(GetParam()), gptq_dir(), float_dir());
  }

  fs::path gptq_dir() const { return models_.path() / "gptq"; }
  fs::path float_dir() const { return models_.path() / "float"; }

  test::ReferenceRun run(const fs::path& dir, const std::string& device_map, const std::string& sims = "") const {
    return test::run_reference(dir, test::reference_options(ref_, device_map, sims, offload_.path()), ref_);
  }

  test::Reference ref_;
  ModelConfig config_;
  test::TempDir models_, offload_;
};

TEST_P(QuantizedExperts, LogitsEqualTheDequantizedFloatModel) {
  const test::ReferenceRun gptq = run(gptq_dir(), R"({"": "cpu"})");
  const test::ReferenceRun plain = run(float_dir(), R"({"": "cpu"})");
  // Exact mode dequantizes to float32 and multiplies as the float model does.
  EXPECT_EQ(gptq.logits, plain.logits);
  EXPECT_EQ(gptq.greedy, plain.greedy);
  // Held as stored: 4 bits and, per 32 weights, a float16 scale and a 4-bit zero.
  const uint64_t float_expert = 3 * static_cast<uint64_t>(config_.hidden_size * config_.moe_intermediate_size) * 4;
  EXPECT_EQ(plain.experts.expert_bytes, float_expert);
  EXPECT_LT(gptq.experts.expert_bytes * 6, float_expert);
}

TEST_P(QuantizedExperts, SameLogitsOnEveryTier) {
  // Layers on sim:0; per layer, expert 0 stays there, expert 1 in RAM
  // (copied when routed), the rest on disk (repacked once into the offload
  // folder, read from it as held when routed).
  const std::string experts_path = GetParam() == "mixtral-tiny-random" ? ".block_sparse_moe.experts." : ".mlp.experts.";
  std::string map = R"({"": 0)";
  for (int64_t l = 0; l < config_.num_layers; ++l)
    for (int64_t e = 1; e < config_.num_experts; ++e)
      map += ", \"model.layers." + std::to_string(l) + experts_path + std::to_string(e) + "\": " +
             (e == 1 ? "\"cpu\"" : "\"disk\"");
  map += "}";
  const test::ReferenceRun want = run(gptq_dir(), R"({"": "cpu"})");
  const test::ReferenceRun got = run(gptq_dir(), map, "1x64MiB");
  test::expect_same_run(got.logits, got.greedy, got.devices, want.logits, want.greedy,
                        "GPTQ experts over sim:0, cpu and disk (against the all-CPU run)");
  EXPECT_GT(got.experts.disk_bytes, 0u);
  EXPECT_GT(got.experts.copied_bytes, 0u);
  EXPECT_LE(got.experts.disk_bytes, got.experts.missed * got.experts.expert_bytes) << "disk experts are read as held";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, QuantizedExperts,
                         ::testing::Values("mixtral-tiny-random", "qwen2moe-tiny-random", "qwen3moe-tiny-random"),
                         test::ParamName());

}  // namespace
}  // namespace strata
