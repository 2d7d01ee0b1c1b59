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

// Loading fails with `phrase` in the message, naming `tensor` when given,
// before a single weight was placed; the CLI says it on one line.
void expect_load_error(const fs::path& dir, const std::string& phrase, const std::string& tensor = {}) {
  ModelOptions o = test::with_threads(1);
  o.device_map = R"({"": "cpu"})";
  uint64_t placed = 0;
  o.load_progress = [&](uint64_t done, uint64_t) { placed = std::max(placed, done); };
  try {
    Model::load(dir, o);
    ADD_FAILURE() << "loaded " << dir;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
    if (!tensor.empty()) {
      EXPECT_NE(std::string(e.what()).find(tensor), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(placed, 0u) << "weights were read before the error";
  const test::CliResult r = test::run_cli("generate -m " + dir.string() + " --prompt-ids 1,2 -n 1 --device-map '{\"\": \"cpu\"}'");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(phrase), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
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
