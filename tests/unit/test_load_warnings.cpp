// ModelOptions::warning: a weight that holds NaN or Inf is reported once,
// naming the tensor, wherever it is kept (in RAM when loaded, on disk when
// first read), and the model still loads.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "format/safetensors.h"
#include "strata/generate.h"
#include "strata/model.h"
#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

// A copy of llama-tiny-random (f32) with one element of `tensor` set to `value`.
void copy_with_value(const fs::path& dir, const std::string& tensor, float value) {
  const fs::path source = test::fixtures_dir() / "models" / "llama-tiny-random";
  fs::create_directories(dir);
  for (const char* file : {"config.json", "model.safetensors"}) fs::copy_file(source / file, dir / file);
  fs::permissions(dir / "model.safetensors", fs::perms::owner_write, fs::perm_options::add);
  uint64_t offset = 0;
  {
    const SafetensorsFile file(dir / "model.safetensors");
    for (const TensorInfo& t : file.tensors())
      if (t.name == tensor) offset = t.file_offset + 4;  // the second element
  }
  ASSERT_GT(offset, 0u) << tensor;
  std::fstream out(dir / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
  out.seekp(static_cast<std::streamoff>(offset));
  out.write(reinterpret_cast<const char*>(&value), sizeof value);
}

std::vector<std::string> warnings_of(const fs::path& dir, const std::string& device_map) {
  test::TempDir offload;
  std::vector<std::string> warnings;
  ModelOptions o = test::with_threads(1);
  o.device_map = device_map;
  o.offload_folder = offload.path();
  o.warning = [&](const std::string& message) { warnings.push_back(message); };
  auto model = Model::load(dir, o);
  GenerateOptions g;
  g.max_new_tokens = 2;
  generate(*model, std::vector<int32_t>{1, 5}, g);  // reads the disk tier, twice
  return warnings;
}

TEST(LoadWarnings, ANonFiniteWeightIsReportedOnceWhereverItLies) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir tmp;
  copy_with_value(tmp.path() / "nan", "model.layers.1.mlp.up_proj.weight", std::numeric_limits<float>::quiet_NaN());
  copy_with_value(tmp.path() / "inf", "model.layers.1.mlp.up_proj.weight", std::numeric_limits<float>::infinity());
  for (const char* map : {R"({"": "cpu"})", R"({"": "cpu", "model.layers.1": "disk"})"}) {
    SCOPED_TRACE(map);
    for (const char* name : {"nan", "inf"}) {
      const auto warnings = warnings_of(tmp.path() / name, map);
      ASSERT_EQ(warnings.size(), 1u) << name;
      EXPECT_NE(warnings[0].find("model.layers.1.mlp.up_proj.weight holds NaN or Inf"), std::string::npos)
          << warnings[0];
    }
  }
  EXPECT_TRUE(warnings_of(test::fixtures_dir() / "models" / "llama-tiny-random", R"({"": "cpu"})").empty());
}

}  // namespace
}  // namespace strata
