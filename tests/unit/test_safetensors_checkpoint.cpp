// Checkpoints: the golden fixtures open and agree with each other, and every
// kind of damaged file or directory fails with a clear strata::Error.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>

#include "format/safetensors.h"
#include "strata/error.h"
#include "strata/model_config.h"
#include "test_support.h"
#include "unit/broken_checkpoints.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

// The fixture models these checks name (Llama-style tensor names), never
// every folder present: a new fixture of another family must not fail them.
std::vector<fs::path> fixture_model_dirs() {
  std::vector<fs::path> dirs;
  for (const std::string& name : test::fixture_model_names()) dirs.push_back(test::fixtures_dir() / "models" / name);
  return dirs;
}

using test::read_json;

std::vector<uint8_t> bytes(std::span<const uint8_t> s) { return {s.begin(), s.end()}; }

TEST(CheckpointFixtures, EveryModelDirOpens) {
  STRATA_REQUIRE_FIXTURES();
  const std::vector<fs::path> dirs = fixture_model_dirs();
  ASSERT_FALSE(dirs.empty());
  for (const fs::path& dir : dirs) {
    SCOPED_TRACE(dir.string());
    const Checkpoint ckpt = Checkpoint::open(dir);
    ASSERT_FALSE(ckpt.tensors().empty());
    // Names by the family's description: GPT-2 calls them transformer.wte and transformer.ln_f.
    const test::FixtureModules modules = test::fixture_modules(dir);
    const std::string embedding = modules.embeddings.front() + ".weight";
    EXPECT_NE(ckpt.find(embedding), nullptr);
    EXPECT_NE(ckpt.find(modules.final_norm + ".weight"), nullptr);
    for (size_t i = 0; i < ckpt.tensors().size(); ++i) {
      const TensorInfo& info = ckpt.tensors()[i];
      if (i > 0) {
        EXPECT_LT(ckpt.tensors()[i - 1].name, info.name) << "sorted by name";
      }
      EXPECT_EQ(&ckpt.get(info.name), &info);
      EXPECT_EQ(ckpt.data(info).size(), info.nbytes);
      EXPECT_EQ(static_cast<uint64_t>(info.numel()) * dtype_size(info.dtype), info.nbytes);
    }
    const ModelConfig config = ModelConfig::from_file(dir / "config.json");
    EXPECT_EQ(ckpt.get(embedding).shape, (std::vector<int64_t>{config.vocab_size, config.hidden_size}));
  }
}

TEST(CheckpointFixtures, ShardedStoriesEqualsSingleFile) {
  STRATA_REQUIRE_FIXTURES();
  const fs::path models = test::fixtures_dir() / "models";
  const Checkpoint single = Checkpoint::open(models / "stories260k");
  const Checkpoint sharded = Checkpoint::open(models / "stories260k-sharded");
  EXPECT_EQ(single.files().size(), 1u);
  EXPECT_EQ(sharded.files().size(), 3u);
  ASSERT_EQ(single.tensors().size(), sharded.tensors().size());
  for (size_t i = 0; i < single.tensors().size(); ++i) {
    const TensorInfo& a = single.tensors()[i];
    const TensorInfo& b = sharded.tensors()[i];
    ASSERT_EQ(a.name, b.name);
    EXPECT_EQ(a.dtype, b.dtype) << a.name;
    EXPECT_EQ(a.shape, b.shape) << a.name;
    EXPECT_EQ(bytes(single.data(a)), bytes(sharded.data(b))) << a.name;
  }
  // The index says which shard holds each tensor; the reader must agree.
  const nlohmann::json index = read_json(models / "stories260k-sharded/model.safetensors.index.json");
  for (const auto& [name, shard] : index["weight_map"].items()) {
    const TensorInfo& info = sharded.get(name);
    EXPECT_EQ(sharded.files()[info.file_index]->path().filename(), shard.get<std::string>()) << name;
  }
}

TEST(CheckpointFixtures, ReferenceFilesParse) {
  STRATA_REQUIRE_FIXTURES();
  for (const fs::path& dir : fixture_model_dirs()) {
    SCOPED_TRACE(dir.string());
    const int64_t vocab = read_json(dir / "config.json")["vocab_size"];
    const SafetensorsFile ref(dir / "reference.safetensors");
    ASSERT_EQ(ref.tensors().size(), 2u);
    const TensorInfo& ids = ref.tensors()[0];  // file order: input_ids first
    const TensorInfo& logits = ref.tensors()[1];
    EXPECT_EQ(ids.name, "input_ids");
    EXPECT_EQ(ids.dtype, DType::I64);
    EXPECT_EQ(ids.shape, (std::vector<int64_t>{2, 8}));
    EXPECT_EQ(logits.name, "logits");
    EXPECT_EQ(logits.dtype, DType::F32);
    EXPECT_EQ(logits.shape, (std::vector<int64_t>{2, 8, vocab}));
    std::vector<int64_t> id_values(16);
    std::memcpy(id_values.data(), ref.data(ids).data(), 16 * sizeof(int64_t));
    for (int64_t id : id_values) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, vocab);
    }
  }
}

TEST(CheckpointFixtures, MissingTensorNamesTensorAndDirectory) {
  STRATA_REQUIRE_FIXTURES();
  // qwen2-tiny-random ties its head: lm_head.weight is not in the file.
  const fs::path dir = test::fixtures_dir() / "models/qwen2-tiny-random";
  const Checkpoint ckpt = Checkpoint::open(dir);
  EXPECT_EQ(ckpt.find("lm_head.weight"), nullptr);
  try {
    ckpt.get("lm_head.weight");
    FAIL() << "expected strata::Error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("lm_head.weight"), std::string::npos) << what;
    EXPECT_NE(what.find(dir.string()), std::string::npos) << what;
    EXPECT_NE(what.find("is this the right architecture?"), std::string::npos) << what;
  }
}

TEST(CheckpointTiny, SingleAndShardedBasesAreValidAndEqual) {
  TempDir tmp;
  test::write_tiny_llama(tmp.path() / "single");
  test::write_tiny_llama_sharded(tmp.path() / "sharded");
  const Checkpoint a = Checkpoint::open(tmp.path() / "single");
  const Checkpoint b = Checkpoint::open(tmp.path() / "sharded");
  EXPECT_EQ(a.tensors().size(), 12u);
  EXPECT_EQ(b.files().size(), 2u);
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    EXPECT_EQ(a.tensors()[i].name, b.tensors()[i].name);
    EXPECT_EQ(bytes(a.data(a.tensors()[i])), bytes(b.data(b.tensors()[i])));
  }
}

TEST(CheckpointTiny, OnlyOtherSafetensorsFileIsUsed) {
  TempDir tmp;
  test::write_tiny_llama(tmp.path());
  fs::rename(tmp.path() / "model.safetensors", tmp.path() / "weights.safetensors");
  EXPECT_EQ(Checkpoint::open(tmp.path()).tensors().size(), 12u);
}

TEST(CheckpointTiny, NotADirectory) {
  TempDir tmp;
  EXPECT_THROW(Checkpoint::open(tmp.path() / "absent"), Error);
}

TEST(CheckpointTiny, ShardTensorsBeyondTheIndexAreKept) {
  TempDir tmp;
  test::write_tiny_llama_sharded(tmp.path());
  // Drop one entry from the index: the tensor is still in its shard.
  const fs::path index_path = tmp.path() / "model.safetensors.index.json";
  nlohmann::json index = read_json(index_path);
  index["weight_map"].erase("model.norm.weight");
  std::ofstream(index_path) << index.dump();
  EXPECT_NE(Checkpoint::open(tmp.path()).find("model.norm.weight"), nullptr);
}

TEST(CheckpointBroken, EveryCaseIsACleanErrorNamingTheFile) {
  TempDir tmp;
  const std::vector<test::BrokenCase> cases = test::make_broken_checkpoints(tmp.path());
  ASSERT_GE(cases.size(), 20u);
  for (const test::BrokenCase& c : cases) {
    if (c.level != test::BrokenLevel::weights) continue;  // config-level: not ours to catch
    SCOPED_TRACE(c.name);
    try {
      Checkpoint::open(c.dir);
      ADD_FAILURE() << "opened without error";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(c.expected), std::string::npos) << what;
      EXPECT_NE(what.find(c.expected_file), std::string::npos) << what;
      EXPECT_FALSE(e.hint().empty()) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos);
    }
  }
}

TEST(CheckpointBroken, ConfigLevelCasesHaveValidWeights) {
  TempDir tmp;
  for (const test::BrokenCase& c : test::make_broken_checkpoints(tmp.path()))
    if (c.level == test::BrokenLevel::config) {
      EXPECT_NO_THROW(Checkpoint::open(c.dir)) << c.name;
    }
}

// Replaces a file by a new one rather than truncating it: ext4 flushes a file
// truncated and rewritten (auto_da_alloc), which made these loops I/O bound.
void write_new(const fs::path& path, const std::string& bytes) {
  fs::remove(path);
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Every prefix of a valid file is a truncated download: each must be refused
// with strata::Error (and never read out of bounds, which ASan would catch).
TEST(SafetensorsRobustness, EveryTruncationIsRefused) {
  TempDir tmp;
  test::write_tiny_llama(tmp.path() / "m");
  const fs::path path = tmp.path() / "m/model.safetensors";
  const std::string original = [&] {
    std::ifstream in(path, std::ios::binary);
    return std::string{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }();
  const fs::path cut = tmp.path() / "cut.safetensors";
  for (size_t len = 0; len < original.size(); len += (len < 2048 ? 1 : 97)) {
    write_new(cut, original.substr(0, len));
    EXPECT_THROW(SafetensorsFile{cut}, Error) << "length " << len;
  }
}

// Random byte changes in the header must give a valid file or strata::Error,
// nothing else: no crash, no other exception type, no sanitizer report.
TEST(SafetensorsRobustness, RandomHeaderCorruptionNeverCrashes) {
  TempDir tmp;
  test::write_tiny_llama(tmp.path() / "m");
  std::string original;
  {
    std::ifstream in(tmp.path() / "m/model.safetensors", std::ios::binary);
    original.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::string alphabet = "{}[],:\"0123456789-.eE \\xF8_ab";
  std::mt19937 rng(20240814);
  const fs::path path = tmp.path() / "f.safetensors";
  int accepted = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string mutated = original;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % 400;  // the length field and the start of the header
      mutated[pos] = (rng() % 2) ? alphabet[rng() % alphabet.size()] : static_cast<char>(rng());
    }
    write_new(path, mutated);
    try {
      const SafetensorsFile file(path);
      for (const TensorInfo& t : file.tensors()) ASSERT_EQ(file.data(t).size(), t.nbytes);
      ++accepted;
    } catch (const Error&) {
    }
  }
  RecordProperty("accepted", accepted);
}

}  // namespace
}  // namespace strata
