// --offload-compute: stream runs offloaded modules on the accelerator, local
// on the CPU, auto measures and picks (simulated devices always stream). The
// start-up measurement gives positive rates; bad values are refused.
#include <gtest/gtest.h>

#include "backend/sim/sim_device.h"
#include "runtime/offload_compute.h"
#include "strata/error.h"
#include "strata/model.h"
#include "test_support.h"

namespace strata {
namespace {

TEST(OffloadCompute, ParsesItsThreeModesAndRefusesOthers) {
  EXPECT_EQ(parse_offload_compute("auto"), OffloadCompute::automatic);
  EXPECT_EQ(parse_offload_compute("stream"), OffloadCompute::stream);
  EXPECT_EQ(parse_offload_compute("local"), OffloadCompute::local);
  EXPECT_THROW(parse_offload_compute("gpu"), Error);
}

TEST(OffloadCompute, MeasuresBothRatesAndComparesThem) {
  SimDevice sim(0, uint64_t{256} << 20);
  ThreadPool pool(2);
  const OffloadRates rates = measure_offload_rates(sim, pool, DType::BF16, 1);
  EXPECT_GT(rates.copy_bytes_per_second, 1e8);
  EXPECT_GT(rates.cpu_bytes_per_second, 1e8);
  EXPECT_EQ(sim.in_use(), 0u);  // the measurement's device buffer is gone
  EXPECT_TRUE(local_is_faster({1e9, 2e9}));
  EXPECT_FALSE(local_is_faster({2e9, 1e9}));
  EXPECT_NE(describe_offload_choice(true, "cuda:0", rates, 1).find("computed by the CPU"), std::string::npos);
}

TEST(OffloadCompute, ExpertsRunOnTheCpuUpToTheTokensWhereItStillBeatsCopies) {
  // The CPU's rate falls as rows grow (it turns compute-bound); copies do not.
  const RateAtRows rates[] = {{1, 30e9}, {2, 28e9}, {4, 20e9}, {8, 11e9}, {16, 6e9}};
  EXPECT_EQ(local_tokens_from(rates, 25e9), 2);
  EXPECT_EQ(local_tokens_from(rates, 10e9), 8);
  EXPECT_EQ(local_tokens_from(rates, 1e9), 16);  // faster at every row count probed
  EXPECT_EQ(local_tokens_from(rates, 31e9), -1);  // copies win even for one token
  EXPECT_EQ(local_tokens_from({}, 1e9), -1);
  SimDevice sim(0, uint64_t{256} << 20);
  ThreadPool pool(2);
  const ExpertComputeChoice choice = measure_expert_compute(sim, pool, DType::BF16);
  EXPECT_FALSE(choice.text.empty());
  EXPECT_NE(choice.text.find("sim:0"), std::string::npos) << choice.text;
  EXPECT_EQ(sim.in_use(), 0u);
}

// Which device runs the modules kept in RAM, for a fixture with layer 0 on
// sim:0 and the rest in RAM.
std::string offload_runner(const std::string& mode, std::vector<float>* logits) {
  const auto dir = test::fixtures_dir() / "models" / "llama-tiny-random";
  ModelOptions o = test::with_threads(2);
  o.sim_devices = "1x64MiB";
  o.device_map = R"({"model.embed_tokens": 0, "model.layers.0": 0, "": "cpu"})";
  o.offload_compute = mode;
  auto model = Model::load(dir, o);
  const test::Reference ref = test::read_reference(dir);
  *logits = model->logits(ref.input_ids, ref.rows, ref.tokens);
  for (const DeviceReport& d : model->devices())
    if (d.runs_offloaded) return d.name;
  return "";
}

TEST(OffloadCompute, LocalRunsOffloadedModulesOnTheCpuAndStreamOnTheAccelerator) {
  STRATA_REQUIRE_FIXTURES();
  std::vector<float> local, stream, automatic;
  EXPECT_EQ(offload_runner("local", &local), "cpu");
  EXPECT_EQ(offload_runner("stream", &stream), "sim:0");
  EXPECT_EQ(offload_runner("auto", &automatic), "sim:0");  // simulated devices always stream
  // Where a block runs never changes what it computes (both are the CPU's ops here).
  EXPECT_EQ(local, stream);
  EXPECT_EQ(automatic, stream);
}

}  // namespace
}  // namespace strata
