// The offload folder: disk-tier weights that need converting are written once,
// reused by the next run with the same needs and sources, and rebuilt when the
// checkpoint changes or the folder is damaged.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>

#include "strata/model.h"
#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

class OffloadFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    STRATA_REQUIRE_FIXTURES();
    // A writable copy of a bf16 fixture: its norm weights must be widened to
    // f32, so keeping layers on disk needs the folder.
    fs::copy(test::fixtures_dir() / "models" / "llama-tiny-random-bf16", tmp_.path() / "m");
    for (const auto& e : fs::directory_iterator(tmp_.path() / "m"))
      fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
    ref_ = test::read_reference(tmp_.path() / "m");
  }

  std::vector<float> run_on_disk() {
    ModelOptions o = test::with_threads(1);
    o.device_map = R"({"": "cpu", "model.layers": "disk"})";
    o.offload_folder = folder();
    auto model = Model::load(tmp_.path() / "m", o);
    EXPECT_EQ(model->offload_folder(), folder());
    return model->logits(ref_.input_ids, ref_.rows, ref_.tokens);
  }
  fs::path folder() const { return tmp_.path() / "offload"; }
  fs::file_time_type data_time() const { return fs::last_write_time(folder() / "offload.safetensors"); }

  test::TempDir tmp_;
  test::Reference ref_;
};

TEST_F(OffloadFolderTest, WrittenOnceReusedThenRebuiltWhenStale) {
  const auto first = run_on_disk();
  ASSERT_TRUE(fs::exists(folder() / "offload.safetensors"));
  ASSERT_TRUE(fs::exists(folder() / "strata-offload.json"));
  const auto written = data_time();

  // Same needs, same sources: the file is reused untouched.
  EXPECT_EQ(run_on_disk(), first);
  EXPECT_EQ(data_time(), written);

  // The checkpoint changed (a newer modification time): rebuilt.
  const fs::path weights = tmp_.path() / "m" / "model.safetensors";
  fs::last_write_time(weights, fs::last_write_time(weights) + std::chrono::seconds(5));
  EXPECT_EQ(run_on_disk(), first);
  EXPECT_NE(data_time(), written);

  // A damaged data file under a matching index: rebuilt, not trusted.
  std::ofstream(folder() / "offload.safetensors", std::ios::trunc) << "garbage";
  EXPECT_EQ(run_on_disk(), first);
  EXPECT_GT(fs::file_size(folder() / "offload.safetensors"), 100u);
}

TEST_F(OffloadFolderTest, LogitsMatchTransformersFromTheFolder) {
  const auto got = run_on_disk();
  ASSERT_EQ(got.size(), ref_.logits.size());
  float worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - ref_.logits[i]));
  EXPECT_LE(worst, 1e-4f);  // the fixtures README's float32 threshold
}

TEST_F(OffloadFolderTest, ComputeDtypeOverrideConvertsDiskMatrices) {
  // f32 compute of bf16 weights: exact upcasts, so transformers' float32
  // reference (computed the same way) holds at 1e-4.
  ModelOptions o = test::with_threads(1);
  o.device_map = R"({"": "disk"})";
  o.offload_folder = folder();
  o.dtype = DType::F32;
  auto model = Model::load(tmp_.path() / "m", o);
  const auto got = model->logits(ref_.input_ids, ref_.rows, ref_.tokens);
  float worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - ref_.logits[i]));
  EXPECT_LE(worst, 1e-4f);
  // Every matrix is now held as f32 in the folder: about twice the bf16 checkpoint.
  EXPECT_GT(fs::file_size(folder() / "offload.safetensors"), fs::file_size(tmp_.path() / "m" / "model.safetensors"));
}

}  // namespace
}  // namespace strata
