// Bad quantized checkpoints are a one-line error before any weight is read
// (issue 14's list): an unknown quant_method, a bit width the method does not
// have, scales of the wrong shape, a g_idx out of range, a missing tensor.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "format/safetensors.h"
#include "strata/error.h"
#include "strata/model.h"
#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

struct Stored {
  std::vector<TensorToWrite> tensors;
  std::vector<std::vector<uint8_t>> bytes;

  size_t index(const std::string& name) const {
    for (size_t i = 0; i < tensors.size(); ++i)
      if (tensors[i].name == name) return i;
    ADD_FAILURE() << "no tensor " << name;
    return 0;
  }
};

// A copy of the GPTQ 4-bit fixture with its config and tensors edited.
fs::path edited_copy(const fs::path& root, const std::function<void(Json&)>& edit_quant,
                     const std::function<void(Stored&)>& edit_tensors = {}) {
  const fs::path from = test::fixtures_dir() / "models" / "llama-gptq-4bit-g32";
  const fs::path dir = root / "model";
  fs::create_directories(dir);
  Json config = test::read_json(from / "config.json");
  edit_quant(config["quantization_config"]);
  std::ofstream(dir / "config.json") << config.dump();
  const Checkpoint checkpoint = Checkpoint::open(from);
  Stored s;
  for (const TensorInfo& t : checkpoint.tensors()) {
    const auto data = checkpoint.data(t);
    s.bytes.emplace_back(data.begin(), data.end());
    s.tensors.push_back({t.name, t.dtype, t.shape, {}});
  }
  if (edit_tensors) edit_tensors(s);
  for (size_t i = 0; i < s.tensors.size(); ++i) s.tensors[i].data = s.bytes[i];
  write_safetensors(dir / "model.safetensors", s.tensors);
  return dir;
}

const std::string kLinear = "model.layers.1.mlp.down_proj";

TEST(QuantErrors, UnknownMethod) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir root;
  test::expect_load_error(edited_copy(root.path(), [](Json& q) { q["quant_method"] = "bitsandbytes"; }),
                    "quantization method 'bitsandbytes' is not supported");
}

TEST(QuantErrors, BitWidthTheMethodDoesNotHave) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir five, three;
  test::expect_load_error(edited_copy(five.path(), [](Json& q) { q["bits"] = 5; }), "GPTQ has no 5-bit format");
  test::expect_load_error(edited_copy(three.path(), [](Json& q) { q["bits"] = 3; }), "GPTQ 3-bit is not supported");
}

TEST(QuantErrors, ScalesOfTheWrongShape) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir root;
  const fs::path dir = edited_copy(root.path(), [](Json&) {}, [](Stored& s) {
    const size_t i = s.index(kLinear + ".scales");
    s.tensors[i].shape = {4, 128};  // 4 groups of 64 inputs, where group_size 32 makes 8
    s.bytes[i].resize(4 * 128 * 2);
  });
  test::expect_load_error(dir, "scales has shape [4, 128], expected [8, 128]", kLinear + ".scales");
}

TEST(QuantErrors, GroupIndexOutOfRange) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir root;
  const fs::path dir = edited_copy(root.path(), [](Json& q) { q["desc_act"] = true; }, [](Stored& s) {
    const size_t i = s.index(kLinear + ".g_idx");
    const int32_t bad = 9;  // 8 groups
    std::memcpy(s.bytes[i].data() + 3 * 4, &bad, 4);
  });
  test::expect_load_error(dir, "g_idx[3] = 9 is out of range [0, 8)", kLinear + ".g_idx");
}

TEST(QuantErrors, GroupIndexOutOfOrderWithoutDescAct) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir root;
  const fs::path dir = edited_copy(root.path(), [](Json&) {}, [](Stored& s) {
    const size_t i = s.index(kLinear + ".g_idx");
    const int32_t other = 1;  // column 0 is in group 0
    std::memcpy(s.bytes[i].data(), &other, 4);
  });
  test::expect_load_error(dir, "g_idx is not in column order but desc_act is false", kLinear + ".g_idx");
}

TEST(QuantErrors, MissingZeros) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir root;
  const fs::path dir = edited_copy(root.path(), [](Json&) {}, [](Stored& s) {
    const size_t i = s.index(kLinear + ".qzeros");
    s.tensors.erase(s.tensors.begin() + static_cast<std::ptrdiff_t>(i));
    s.bytes.erase(s.bytes.begin() + static_cast<std::ptrdiff_t>(i));
  });
  test::expect_load_error(dir, "lacks its qzeros tensor", kLinear + ".qzeros");
}

}  // namespace
}  // namespace strata
