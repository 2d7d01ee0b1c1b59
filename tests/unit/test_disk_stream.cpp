// Weights on the disk tier are read ahead by the prefetcher with direct I/O.
// A file that goes bad after loading (truncated here) ends the forward with a
// clear strata::Error naming it: no hang, no crash (a memory map would have
// raised SIGBUS).
#include <gtest/gtest.h>

#include <filesystem>

#include "runtime/model_impl.h"
#include "strata/error.h"
#include "strata/model.h"
#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

TEST(DiskStream, ATruncatedCheckpointEndsTheRunWithAnError) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir tmp;
  fs::copy(test::fixtures_dir() / "models" / "llama-tiny-random", tmp.path() / "m");
  for (const auto& e : fs::directory_iterator(tmp.path() / "m"))
    fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  const test::Reference ref = test::read_reference(tmp.path() / "m");

  ModelOptions o = test::with_threads(1);
  o.device_map = R"({"": "disk"})";
  o.offload_folder = tmp.path() / "offload";
  auto model = Model::load(tmp.path() / "m", o);
  const auto before = model->logits(ref.input_ids, ref.rows, ref.tokens);
  EXPECT_FALSE(before.empty());

  const fs::path weights = tmp.path() / "m" / "model.safetensors";
  fs::resize_file(weights, fs::file_size(weights) / 2);
  try {
    model->logits(ref.input_ids, ref.rows, ref.tokens);
    ADD_FAILURE() << "a forward over a truncated checkpoint must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
  // The model stays usable for another try, which fails the same way.
  EXPECT_THROW(model->logits(ref.input_ids, ref.rows, ref.tokens), Error);
}

// A block's tensors that lie back to back in a file are read with one
// request: the disk sees a few large reads per layer, not one per tensor.
TEST(DiskStream, AdjacentTensorsOfABlockAreReadInOneRequest) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir tmp;
  ModelOptions o = test::with_threads(1);
  o.device_map = R"({"": "disk"})";
  o.offload_folder = tmp.path() / "offload";
  auto model = Model::load(test::fixtures_dir() / "models" / "llama-tiny-random", o);
  const auto& ranges = model->impl().weights->disk_ranges();
  const int64_t layers = model->config().num_layers;
  // A layer holds 9 tensors; stored together, they are read as one range.
  EXPECT_GE(ranges.size(), static_cast<size_t>(layers) + 3);  // + embedding, norm, head at least
  EXPECT_LT(ranges.size(), static_cast<size_t>(layers) * 9);
  uint64_t ranged = 0;
  for (const auto& r : ranges) ranged += r.size;
  EXPECT_EQ(ranged, model->disk_bytes_per_pass());
}

}  // namespace
}  // namespace strata
