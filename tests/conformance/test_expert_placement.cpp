// Routed experts are weight groups of their own (DESIGN.md, "the unit of
// placement"): a map may put the experts of one layer on different tiers —
// some resident on the accelerator that runs the layer, some in RAM, some on
// disk — and the logits stay bit-identical to the all-CPU run, batched or
// not. Only the experts the router picked are read from disk or copied, and
// caches keep them: the counters show it.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "strata/generate.h"
#include "strata/model.h"
#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

fs::path model_dir(const std::string& name) { return test::fixtures_dir() / "models" / name; }

class ExpertPlacement : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    STRATA_REQUIRE_FIXTURES();
    ref_ = test::read_reference(model_dir(GetParam()));
    config_ = ModelConfig::from_file(model_dir(GetParam()) / "config.json");
    experts_path_ = GetParam() == "mixtral-tiny-random" ? ".block_sparse_moe.experts." : ".mlp.experts.";
  }

  ModelOptions options(const std::string& device_map, const std::string& sims = "") const {
    return test::reference_options(ref_, device_map, sims, offload_.path());
  }

  // "model.layers.L<experts path>E"
  std::string expert(int64_t layer, int64_t e) const {
    return "model.layers." + std::to_string(layer) + experts_path_ + std::to_string(e);
  }

  // Expert e of every layer goes to tier(e); the rest of the map is `rest`.
  std::string map_with_experts(const std::string& rest, const std::function<std::string(int64_t)>& tier) const {
    std::string json = "{" + rest;
    for (int64_t l = 0; l < config_.num_layers; ++l)
      for (int64_t e = 0; e < config_.num_experts; ++e) {
        const std::string t = tier(e);
        if (!t.empty()) json += ", \"" + expert(l, e) + "\": " + t;
      }
    return json + "}";
  }

  // Layers on sim:0; their odd experts in RAM, even ones on disk.
  std::string layers_on_sim_experts_in_ram_and_on_disk() const {
    return map_with_experts(R"("": 0)", [](int64_t e) { return e % 2 ? "\"cpu\"" : "\"disk\""; });
  }

  using Outcome = test::ReferenceRun;

  Outcome run(const ModelOptions& o) const { return test::run_reference(model_dir(GetParam()), o, ref_); }

  const Outcome& cpu_run() const {
    if (cpu_.logits.empty()) cpu_ = run(options(R"({"": "cpu"})"));
    return cpu_;
  }

  void expect_same(const Outcome& got, const char* what) const {
    test::expect_same_run(got.logits, got.greedy, got.devices, cpu_run().logits, cpu_run().greedy,
                          std::string(what) + " (against the all-CPU run)");
  }

  test::Reference ref_;
  ModelConfig config_;
  std::string experts_path_;
  test::TempDir offload_;
  mutable Outcome cpu_;
};

TEST_P(ExpertPlacement, AllOnCpuMatchesTransformers) {
  const Outcome cpu = run(options(R"({"": "cpu"})"));
  float worst = 0;
  for (size_t i = 0; i < cpu.logits.size(); ++i) worst = std::max(worst, std::fabs(cpu.logits[i] - ref_.logits[i]));
  EXPECT_LE(worst, 1e-4f);  // the fixtures README's float32 threshold
  EXPECT_GT(cpu.experts.routed, 0u);
  EXPECT_EQ(cpu.experts.missed, 0u) << "resident experts are never missed";
  EXPECT_EQ(cpu.experts.disk_bytes, 0u);
}

TEST_P(ExpertPlacement, OneLayersExpertsOnSimCpuAndDisk) {
  // Layers on sim:0; per layer, expert 0 stays there, expert 1 in RAM (copied
  // when routed), the rest on disk (read when routed).
  const std::string map = map_with_experts(R"("": 0)", [](int64_t e) {
    return e == 0 ? std::string() : e == 1 ? "\"cpu\"" : "\"disk\"";
  });
  const Outcome got = run(options(map, "1x64MiB"));
  expect_same(got, "experts over sim:0, cpu and disk");
  EXPECT_GT(got.experts.disk_bytes, 0u);
  EXPECT_GT(got.experts.copied_bytes, 0u);
  EXPECT_GT(got.experts.device_lookups, 0u);
  // Only routed experts are read, each at most once per miss.
  EXPECT_LE(got.experts.disk_bytes, got.experts.missed * got.experts.expert_bytes);
  EXPECT_EQ(got.experts.computed_on_host, 0u) << "under auto, sim devices stream their experts";
}

// Where experts run (DESIGN.md, "Execution"): experts of a layer on sim:0 that lie in RAM
// or on disk are computed by the CPU where they lie, their tokens copied
// over and their outputs back; the sums keep their order, so the logits stay
// bit-identical.
TEST_P(ExpertPlacement, ExpertsInRamRunOnTheCpuWithOffloadComputeLocal) {
  const std::string map = map_with_experts(R"("": 0)", [](int64_t e) {
    return e == 0 ? std::string() : e % 2 ? "\"cpu\"" : "\"disk\"";
  });
  ModelOptions o = options(map, "1x64MiB");
  o.offload_compute = "local";
  const Outcome got = run(o);
  expect_same(got, "experts in RAM and on disk computed by the CPU for sim:0's layers");
  EXPECT_GT(got.experts.computed_on_host, 0u);
  EXPECT_GT(got.experts.disk_bytes, 0u);
  EXPECT_EQ(got.experts.copied_bytes, 0u) << "no expert is copied";
  EXPECT_EQ(got.experts.device_lookups, 0u) << "sim:0 has no expert cache";
  // ... and the plan bills none: sim:0's bill is smaller than when streaming.
  o.offload_compute = "stream";
  const Outcome streamed = run(o);
  const auto planned_on_sim = [](const Outcome& r) {
    for (const DeviceReport& d : r.devices)
      if (d.name == "sim:0") return d.planned_bytes;
    return 0.0;
  };
  EXPECT_LT(planned_on_sim(got), planned_on_sim(streamed));
  EXPECT_GT(streamed.experts.copied_bytes, 0u);
}

TEST_P(ExpertPlacement, EachExpertRunsWhereItsRoutedTokensMakeItCheaper) {
  // A threshold of one token: in the prompt's step experts routed to one
  // token run on the CPU and the others are copied to sim:0, in one layer.
  ModelOptions o = options(layers_on_sim_experts_in_ram_and_on_disk(), "1x64MiB");
  o.expert_local_tokens = 1;
  const Outcome got = run(o);
  expect_same(got, "experts split between the CPU and sim:0 by their tokens");
  EXPECT_GT(got.experts.computed_on_host, 0u);
  EXPECT_GT(got.experts.copied_bytes, 0u);
  o.expert_local_tokens = -1;
  EXPECT_EQ(run(o).experts.computed_on_host, 0u);
}

TEST_P(ExpertPlacement, ExpertsOnDiskRunOnTheCpu) {
  // Everything in RAM but the experts, which the CPU reads from disk when routed.
  const std::string map = map_with_experts(R"("": "cpu")", [](int64_t) { return "\"disk\""; });
  const Outcome got = run(options(map));
  expect_same(got, "experts on disk, computed on the cpu");
  EXPECT_GT(got.experts.missed, 0u);
  EXPECT_EQ(got.experts.copied_bytes, 0u);
  // The cache holds two layers' worth of experts: everything routed twice hits.
  EXPECT_GT(got.experts.host_hits, 0u);
  EXPECT_EQ(got.experts.host_hits + got.experts.missed, got.experts.host_lookups);
}

TEST_P(ExpertPlacement, ExpertsReadFromDiskAreConvertedToTheComputeDtype) {
  // --dtype bf16 on float32 weights: disk experts are converted in their
  // cache slot after each read, resident ones at load; both equal the all-CPU
  // bf16 run bit for bit.
  ModelOptions all_cpu = options(R"({"": "cpu"})");
  all_cpu.dtype = DType::BF16;
  const Outcome want = run(all_cpu);
  ModelOptions o = options(map_with_experts(R"("": 0)", [](int64_t e) { return e % 2 ? "\"disk\"" : ""; }),
                           "1x64MiB");
  o.dtype = DType::BF16;
  const Outcome on_sim = run(o);
  ModelOptions cpu = options(map_with_experts(R"("": "cpu")", [](int64_t) { return "\"disk\""; }));
  cpu.dtype = DType::BF16;
  const Outcome on_cpu = run(cpu);
  for (const Outcome* got : {&on_sim, &on_cpu}) {
    test::expect_same_run(got->logits, got->greedy, got->devices, want.logits, want.greedy,
                          std::string(got == &on_sim ? "sim:0" : "cpu") + ": converted experts (against the all-CPU bf16 run)");
    EXPECT_GT(got->experts.disk_bytes, 0u);
  }
}

TEST_P(ExpertPlacement, CachesOfOneExpertFetchOneAtATime) {
  // Caches of one expert: every fetch brings one expert and evicts the last,
  // on the host (disk experts) and on sim:0 (experts copied from RAM).
  ModelOptions o = options(layers_on_sim_experts_in_ram_and_on_disk(), "1x64MiB");
  o.expert_cache = 1;
  const Outcome got = run(o);
  expect_same(got, "caches of one expert");
  EXPECT_EQ(got.experts.host_hits + got.experts.device_hits + got.experts.missed,
            got.experts.routed) << "each routed expert is a hit in one cache or a miss";
}

TEST_P(ExpertPlacement, EverythingOnDiskStreamsToOneSimDevice) {
  ModelOptions o = options(R"({"": "disk"})", "1x64MiB");
  o.main_device = "sim:0";
  const Outcome got = run(o);
  expect_same(got, "all on disk, run on sim:0");
  EXPECT_GT(got.experts.disk_bytes, 0u);
  EXPECT_GT(got.experts.copied_bytes, 0u);
}

TEST_P(ExpertPlacement, QuantizedExpertsOnEveryTierMatchTheAllCpuRun) {
  // --quantize int4: experts are quantized once into the offload folder;
  // those on disk are read from it as held (a quarter of the float bytes or
  // less), those in RAM copied to sim:0 as held, and all compute the same
  // logits as the all-CPU quantized run, bit for bit.
  ModelOptions all_cpu = options(R"({"": "cpu"})");
  all_cpu.quantize = "int4";
  const Outcome want = run(all_cpu);
  ModelOptions o = options(map_with_experts(R"("": 0)", [](int64_t e) {
                             return e == 0 ? std::string() : e == 1 ? "\"cpu\"" : "\"disk\"";
                           }),
                           "1x64MiB");
  o.quantize = "int4";
  const Outcome got = run(o);
  test::expect_same_run(got.logits, got.greedy, got.devices, want.logits, want.greedy,
                        "int4 experts over sim:0, cpu and disk (against the all-CPU int4 run)");
  const uint64_t float_expert = 3 * static_cast<uint64_t>(config_.hidden_size * config_.moe_intermediate_size) * 4;
  EXPECT_LT(got.experts.expert_bytes * 4, float_expert) << "experts are held quantized";
  EXPECT_GT(got.experts.disk_bytes, 0u);
  EXPECT_GT(got.experts.copied_bytes, 0u);
  EXPECT_LE(got.experts.disk_bytes, got.experts.missed * got.experts.expert_bytes) << "disk experts are read as held";
  EXPECT_NE(want.logits, cpu_run().logits) << "the experts were quantized";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ExpertPlacement,
                         ::testing::Values("mixtral-tiny-random", "qwen2moe-tiny-random", "qwen3moe-tiny-random"),
                         test::ParamName());

}  // namespace
}  // namespace strata
