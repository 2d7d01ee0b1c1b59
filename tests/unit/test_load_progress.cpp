// ModelOptions::load_progress: reported from 0 to the bytes the weight store
// places in memory (the disk tier is not placed), never going back.
#include <gtest/gtest.h>

#include <filesystem>
#include <utility>
#include <vector>

#include "strata/model.h"
#include "test_support.h"

namespace strata {
namespace {

std::vector<std::pair<uint64_t, uint64_t>> progress_of_loading(const std::string& device_map) {
  test::TempDir tmp;
  std::vector<std::pair<uint64_t, uint64_t>> calls;
  ModelOptions o = test::with_threads(1);
  o.device_map = device_map;
  o.offload_folder = tmp.path();
  o.load_progress = [&](uint64_t placed, uint64_t total) { calls.emplace_back(placed, total); };
  Model::load(test::fixtures_dir() / "models" / "llama-tiny-random", o);
  return calls;
}

TEST(LoadProgress, RunsFromZeroToTheBytesPlaced) {
  STRATA_REQUIRE_FIXTURES();
  const auto calls = progress_of_loading(R"({"": "cpu"})");
  ASSERT_GE(calls.size(), 2u);
  const uint64_t total = calls.front().second;
  EXPECT_EQ(calls.front().first, 0u);
  EXPECT_EQ(calls.back().first, total);
  for (size_t i = 1; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].second, total);
    EXPECT_GE(calls[i].first, calls[i - 1].first);
  }
  // All in RAM: every tensor, 1-D ones widened to f32 as stored here.
  const uint64_t weights = std::filesystem::file_size(test::fixtures_dir() / "models" / "llama-tiny-random" /
                                                      "model.safetensors");
  EXPECT_GT(total, weights / 2);
  EXPECT_LT(total, weights);

  // Layers on disk are not placed: less to report.
  const auto with_disk = progress_of_loading(R"({"": "cpu", "model.layers": "disk"})");
  ASSERT_FALSE(with_disk.empty());
  EXPECT_LT(with_disk.back().second, total);
  EXPECT_EQ(with_disk.back().first, with_disk.back().second);
}

}  // namespace
}  // namespace strata
