// Bad mixture-of-experts input is a one-line error before any weight is
// read: a router that picks more experts than there are, a router of the
// wrong shape, an expert tensor missing from the checkpoint.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "format/safetensors.h"
#include "strata/error.h"
#include "strata/model.h"
#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

// A copy of the qwen3moe fixture (8 experts, top-2) with its tensors
// rewritten by `edit`, which may drop or replace them.
fs::path damaged_copy(const fs::path& root, const std::string& name,
                      const std::function<void(std::vector<TensorToWrite>&, std::vector<std::vector<uint8_t>>&)>& edit,
                      const std::function<void(nlohmann::json&)>& edit_config = {}) {
  const fs::path from = test::fixtures_dir() / "models" / "qwen3moe-tiny-random";
  const fs::path dir = root / name;
  fs::create_directories(dir);
  nlohmann::json config = test::read_json(from / "config.json");
  if (edit_config) edit_config(config);
  std::ofstream(dir / "config.json") << config.dump();
  const Checkpoint checkpoint = Checkpoint::open(from);
  std::vector<TensorToWrite> tensors;
  std::vector<std::vector<uint8_t>> storage;
  for (const TensorInfo& t : checkpoint.tensors()) {
    const auto bytes = checkpoint.data(t);
    storage.emplace_back(bytes.begin(), bytes.end());
    tensors.push_back({t.name, t.dtype, t.shape, {}});
  }
  edit(tensors, storage);
  for (size_t i = 0; i < tensors.size(); ++i) tensors[i].data = storage[i];
  write_safetensors(dir / "model.safetensors", tensors);
  return dir;
}

void drop(std::vector<TensorToWrite>& tensors, std::vector<std::vector<uint8_t>>& storage, const std::string& name) {
  for (size_t i = 0; i < tensors.size(); ++i)
    if (tensors[i].name == name) {
      tensors.erase(tensors.begin() + static_cast<std::ptrdiff_t>(i));
      storage.erase(storage.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
  FAIL() << "no tensor " << name;
}

void expect_load_error(const fs::path& dir, const std::string& phrase, const std::string& tensor = {}) {
  test::expect_load_error(dir, phrase, tensor, R"({"": "cpu"})");
}

TEST(MoeErrors, MoreExpertsPerTokenThanExperts) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir root;
  const fs::path dir = damaged_copy(
      root.path(), "top9", [](auto&, auto&) {}, [](nlohmann::json& c) { c["num_experts_per_tok"] = 9; });
  expect_load_error(dir, "num_experts_per_tok (9) exceeds the 8 experts");
}

TEST(MoeErrors, RouterOfTheWrongShape) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir root;
  const std::string router = "model.layers.1.mlp.gate.weight";
  const fs::path dir = damaged_copy(root.path(), "router", [&](auto& tensors, auto& storage) {
    for (size_t i = 0; i < tensors.size(); ++i)
      if (tensors[i].name == router) {
        tensors[i].shape = {7, 64};  // 7 experts' rows, not 8
        storage[i].resize(7 * 64 * sizeof(float));
      }
  });
  expect_load_error(dir, "does not match config.json", router);
}

TEST(MoeErrors, MissingExpertTensor) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir root;
  const std::string missing = "model.layers.1.mlp.experts.5.up_proj.weight";
  const fs::path dir =
      damaged_copy(root.path(), "missing", [&](auto& tensors, auto& storage) { drop(tensors, storage, missing); });
  expect_load_error(dir, "expert tensor missing from the checkpoint", missing);
}

}  // namespace
}  // namespace strata
