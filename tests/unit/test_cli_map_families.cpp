// `strata map --config` plans every family from its config.json alone: the
// default no-split class keeps each decoder layer whole, and `--no-split ""`
// lets Accelerate's sequential strategy cut inside a layer, down to the
// family's own sub-modules (names from transformers' tree, see
// test_family_trees.cpp).
#include <gtest/gtest.h>

#include <cctype>
#include <nlohmann/json.hpp>
#include <string>

#include "test_support.h"

namespace strata {
namespace {

struct Family {
  std::string fixture;
  std::string layer;      // layer 0's module path
  std::string sub_module;  // a module inside layer 0
};

class CliMapFamily : public ::testing::TestWithParam<Family> {};

TEST_P(CliMapFamily, PlansFromConfigWithAndWithoutNoSplit) {
  STRATA_REQUIRE_FIXTURES();
  const Family& f = GetParam();
  const std::string config = (test::fixtures_dir() / "models" / f.fixture / "config.json").string();
  // Budgets that hold a fraction of these ~0.5 MB models, so each map uses every device.
  const std::string common = "map --config " + config + " --max-memory 0=60KB,1=60KB,cpu=200KB,disk --json";

  for (const char* strategy : {"sequential", "auto"}) {
    SCOPED_TRACE(strategy);
    // auto also budgets the KV cache and activations: it gets the room they take.
    const std::string args = std::string(strategy) == "auto"
                                 ? "map --config " + config + " --max-memory 0=4MB,1=4MB,cpu=64MB,disk --json"
                                 : common + " --strategy sequential";
    const test::CliResult whole = test::run_cli(args);
    ASSERT_EQ(whole.exit_code, 0) << whole.err;
    const auto by_layer = nlohmann::json::parse(whole.out);
    for (const auto& [module, device] : by_layer.items())
      EXPECT_NE(module.rfind(f.layer + ".", 0), 0u) << module << ": the decoder layer class is never split";
  }

  const test::CliResult split = test::run_cli(common + " --strategy sequential --no-split ''");
  ASSERT_EQ(split.exit_code, 0) << split.err;
  const auto by_module = nlohmann::json::parse(split.out);
  bool cut_inside = false;
  for (const auto& [module, device] : by_module.items()) cut_inside = cut_inside || module.rfind(f.layer + ".", 0) == 0;
  EXPECT_TRUE(cut_inside) << split.out;
  EXPECT_TRUE(by_module.contains(f.sub_module)) << split.out;
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, CliMapFamily,
    ::testing::Values(Family{"gpt2-tiny-random", "transformer.h.0", "transformer.h.0.attn"},
                      Family{"gemma-tiny-random", "model.layers.0", "model.layers.0.self_attn.q_proj"},
                      Family{"gemma2-tiny-random", "model.layers.0", "model.layers.0.self_attn"},
                      Family{"phi3-tiny-random", "model.layers.0", "model.layers.0.self_attn.o_proj"},
                      Family{"qwen3-tiny-random", "model.layers.0", "model.layers.0.self_attn.q_proj"},
                      Family{"mixtral-tiny-random", "model.layers.0", "model.layers.0.self_attn.q_proj"},
                      Family{"qwen2moe-tiny-random", "model.layers.0", "model.layers.0.self_attn.q_proj"},
                      Family{"qwen3moe-tiny-random", "model.layers.0", "model.layers.0.self_attn.q_proj"}),
    [](const ::testing::TestParamInfo<Family>& param_info) {
      std::string name;
      for (const char c : param_info.param.fixture) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      return name;
    });

}  // namespace
}  // namespace strata
