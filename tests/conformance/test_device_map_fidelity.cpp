// DESIGN.md's first invariant: logits do not depend on the device map. Each
// fixture model runs under maps that keep everything on the CPU, split the
// layers over two simulated accelerators and the CPU, keep half the layers
// on disk, and keep everything on disk with one small sim:0 that only ever
// holds the layer it runs; the logits must be bit-identical to the all-CPU
// run, the greedy ids equal, and no device's peak allocation may exceed its
// budget or the plan's bill for it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "strata/generate.h"
#include "strata/model.h"
#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

fs::path model_dir(const std::string& name) { return test::fixtures_dir() / "models" / name; }

// A JSON map from per-layer devices plus the other modules' entries.
std::string map_json(const std::vector<std::string>& layers, const std::function<std::string(int64_t)>& layer_device,
                     const std::string& others) {
  std::string json = "{" + others;
  for (size_t i = 0; i < layers.size(); ++i)
    json += ", \"" + layers[i] + "\": " + layer_device(static_cast<int64_t>(i));
  return json + "}";
}

using Outcome = test::ReferenceRun;

class DeviceMapFidelity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    STRATA_REQUIRE_FIXTURES();
    ref_ = test::read_reference(model_dir(GetParam()));
    modules_ = test::fixture_modules(model_dir(GetParam()));
    layers_ = static_cast<int64_t>(modules_.layers.size());
  }

  ModelOptions options(const std::string& device_map, const std::string& sims = "") const {
    return test::reference_options(ref_, device_map, sims, offload_.path());
  }

  Outcome run(const ModelOptions& o) const { return test::run_reference(model_dir(GetParam()), o, ref_); }

  // Bit-identical to the all-CPU run, and within every budget and bill.
  void expect_same(const Outcome& got, const char* what) const {
    const Outcome& cpu = reference_run();
    test::expect_same_run(got.logits, got.greedy, got.devices, cpu.logits, cpu.greedy,
                          std::string(what) + " (against the all-CPU run)");
  }

  const Outcome& reference_run() const {
    if (cpu_run_.logits.empty()) cpu_run_ = run(options(R"({"": "cpu"})"));
    return cpu_run_;
  }

  test::Reference ref_;
  test::FixtureModules modules_;
  int64_t layers_ = 0;
  test::TempDir offload_;
  mutable Outcome cpu_run_;
};

TEST_P(DeviceMapFidelity, AllOnCpuMatchesTransformers) {
  const Outcome& cpu = reference_run();
  ASSERT_EQ(cpu.logits.size(), ref_.logits.size());
  float worst = 0;
  for (size_t i = 0; i < cpu.logits.size(); ++i) worst = std::max(worst, std::fabs(cpu.logits[i] - ref_.logits[i]));
  EXPECT_LE(worst, 1e-4f);  // the fixtures README's float32 threshold
}

TEST_P(DeviceMapFidelity, LayersSplitOverTwoSimDevicesAndCpu) {
  const int64_t third = std::max<int64_t>(1, layers_ / 3);
  std::string others = "\"" + modules_.final_norm + "\": 1, \"" + modules_.head + "\": " + (modules_.tied ? "0" : "\"cpu\"");
  for (const std::string& embedding : modules_.embeddings) others += ", \"" + embedding + "\": 0";
  const std::string map = map_json(
      modules_.layers, [&](int64_t i) { return i < third ? "0" : i < 2 * third ? "1" : "\"cpu\""; }, others);
  // cpu layers are offloaded: their weights stream to sim:0, which runs them.
  expect_same(run(options(map, "2x8MiB")), "sim:0/sim:1/cpu, cpu layers run on sim:0");
  ModelOptions on_cpu = options(map, "2x8MiB");
  on_cpu.main_device = "cpu";
  expect_same(run(on_cpu), "sim:0/sim:1/cpu, cpu layers run on the cpu");
}

TEST_P(DeviceMapFidelity, HalfTheLayersOnDisk) {
  const std::string map = map_json(
      modules_.layers, [&](int64_t i) { return i < layers_ / 2 ? "\"cpu\"" : "\"disk\""; }, R"("": "cpu")");
  expect_same(run(options(map)), "half the layers on disk");
}

TEST_P(DeviceMapFidelity, EverythingOnDiskWithOneSmallSimDevice) {
  ModelOptions o = options(R"({"": "disk"})", "1x64MiB");
  o.main_device = "sim:0";
  const Outcome roomy = run(o);
  expect_same(roomy, "all on disk, sim:0 of 64 MiB");
  // Now a sim:0 exactly as large as the plan says it needs: it only holds
  // the staging slot (the largest layer), the KV cache and activations.
  const double need = roomy.devices[1].planned_bytes;
  ASSERT_GT(need, 0);
  o.sim_devices = "1x" + std::to_string(static_cast<uint64_t>(std::ceil(need)));
  const Outcome tight = run(o);
  expect_same(tight, "all on disk, sim:0 just large enough");
  EXPECT_GT(tight.devices[1].peak, 0u);
}

TEST_P(DeviceMapFidelity, AutoPlanOverTwoSimDevicesCpuAndDisk) {
  // Budgets that hold about a third of the weights each, so auto spreads the
  // model over every tier.
  uint64_t weights = 0;
  for (const auto& e : fs::directory_iterator(model_dir(GetParam())))
    if (e.path().extension() == ".safetensors" && e.path().filename() != "reference.safetensors")
      weights += fs::file_size(e.path());
  ModelOptions o = options("auto", "2x8MiB");
  const uint64_t share = weights / 3;
  o.max_memory = "0=" + std::to_string(share + (1 << 20)) + ",1=" + std::to_string(share) +
                 ",cpu=" + std::to_string(share / 2) + ",disk";
  expect_same(run(o), "auto over sim:0, sim:1, cpu and disk");
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DeviceMapFidelity, ::testing::ValuesIn(test::fixture_model_names()),
                         test::ParamName());

}  // namespace
}  // namespace strata
