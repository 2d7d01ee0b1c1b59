// Bad device maps and budgets end with one clear line and a non-zero exit,
// before any weight is read; the figures a user needs are in the message.
#include <gtest/gtest.h>

#include <algorithm>

#include "broken_checkpoints.h"
#include "strata/error.h"
#include "strata/model.h"
#include "test_support.h"

namespace strata {
namespace {

class DeviceMapErrors : public ::testing::Test {
 protected:
  void SetUp() override { test::write_tiny_llama(dir_.path() / "m"); }

  // Runs generate with extra flags and expects a one-line error containing `phrase`.
  void expect_error(const std::string& flags, const std::string& phrase) {
    SCOPED_TRACE(flags);
    const test::CliResult r =
        test::run_cli("generate -m " + (dir_.path() / "m").string() + " --prompt-ids 1,2 -n 2 --temp 0 " + flags);
    EXPECT_FALSE(r.signaled) << r.err;
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(r.err.rfind("strata: error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(phrase), std::string::npos) << r.err;
  }

  test::TempDir dir_;
};

TEST_F(DeviceMapErrors, MissingModule) {
  expect_error(R"(--device-map '{"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.norm": "cpu"}')",
               "does not place lm_head");
}

TEST_F(DeviceMapErrors, UnknownDevice) {
  expect_error(R"(--device-map '{"": 3}' --sim-devices 2x1MiB)", "names accelerator 3, but only sim:0..1 exist");
  expect_error(R"(--device-map '{"": 0}')", "there are no accelerators");
  expect_error(R"(--device-map '{"": "gpu"}')", "unknown device 'gpu'");
}

TEST_F(DeviceMapErrors, SplitNoSplitModule) {
  expect_error(R"(--device-map '{"": "cpu", "model.layers.0.mlp": "disk"}')", "splits model.layers.0");
}

TEST_F(DeviceMapErrors, UnknownModuleName) {
  expect_error(R"(--device-map '{"": "cpu", "model.layer.0": "disk"}')", "'model.layer.0', which is no module");
}

TEST_F(DeviceMapErrors, BadStrategyOrJson) {
  expect_error("--device-map fastest", "is no strategy, JSON map or readable file");
  expect_error(R"(--device-map '{"": }')", "not valid JSON");
}

TEST_F(DeviceMapErrors, BudgetTooSmallForTheLargestLayerStatesTheMinimum) {
  // The whole tiny model is ~3 KiB: a 1 KiB sim:0 cannot run even one layer.
  expect_error("--sim-devices 1x1KiB --max-memory 0=1KiB,disk", "needs at least");
  // Without a disk budget the CPU must hold what the accelerators cannot.
  expect_error("--max-memory cpu=100", "needs at least");
}

TEST_F(DeviceMapErrors, ShareBeyondASimDeviceCapacityFailsBeforeLoading) {
  expect_error(R"(--device-map '{"": 0}' --sim-devices 1x2KiB)", "sim:0 cannot hold its share");
}

TEST_F(DeviceMapErrors, BudgetsAreHardLimitsForEveryStrategy) {
  expect_error(R"(--device-map '{"": 0}' --sim-devices 1x4MiB --max-memory 0=1KiB,cpu=1GiB)", "(its budget)");
  expect_error(R"(--device-map sequential --max-memory cpu=200)", "Accelerate's strategies budget weights only");
}

TEST_F(DeviceMapErrors, AbsurdSizesAreErrorsNotCrashes) {
  expect_error("--ctx 4611686018427387904", "out of range");
  expect_error(R"(--device-map '{"": 4294967296}')", "cannot exist");
  expect_error("--sim-devices 64MiB,", "empty item");
  expect_error("--sim-devices 2x64MiB@fast", "copy rate");
}

TEST_F(DeviceMapErrors, MainDeviceMustExist) {
  expect_error(R"(--device-map '{"": "disk"}' --main-device sim:1 --sim-devices 1x1MiB)", "only sim:0..0 exist");
}

}  // namespace
}  // namespace strata
