// Offloaded blocks reach the accelerator that runs them through its staging
// slots: one fills (on the sim device's copier thread, on a GPU's copy
// stream) while the block in the other computes. These tests check what the
// weight store copies each pass, and that a pass cut short leaves the next
// one correct. The sim device refuses a fill into a slot a block still
// reads, so every run here also checks the store's ordering.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "synth/synth_checkpoint.h"
#include "runtime/model_impl.h"
#include "strata/error.h"
#include "strata/model.h"
#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

// llama-tiny-random: 3 layers, untied head; blocks are the embedding, the
// layers, the norm and the head.
fs::path tiny_model() { return test::fixtures_dir() / "models" / "llama-tiny-random"; }

ModelOptions on_sim(const std::string& device_map, const fs::path& offload) {
  ModelOptions o = test::with_threads(1);
  o.device_map = device_map;
  o.sim_devices = "1x64MiB";
  o.main_device = "sim:0";
  o.offload_folder = offload;
  return o;
}

uint64_t copied_to_sim(Model& model) {
  return model.impl().devices->resolve(plan::Device::gpu_(0)).bytes_copied_in();
}

std::vector<float> all_on_cpu(const test::Reference& ref) {
  ModelOptions o = test::with_threads(1);
  o.device_map = R"({"": "cpu"})";
  return Model::load(tiny_model(), o)->logits(ref.input_ids, ref.rows, ref.tokens);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Runs two passes; both must equal the all-CPU logits. Returns the bytes
// copied to sim:0 during the second.
uint64_t bytes_copied_by_the_second_pass(Model& model, const test::Reference& ref) {
  const auto first = model.logits(ref.input_ids, ref.rows, ref.tokens);
  const uint64_t after_first = copied_to_sim(model);
  const auto second = model.logits(ref.input_ids, ref.rows, ref.tokens);
  const auto cpu = all_on_cpu(ref);
  EXPECT_TRUE(same_bits(first, cpu));
  EXPECT_TRUE(same_bits(second, cpu));
  return copied_to_sim(model) - after_first;
}

TEST(StagingSlots, TwoStreamedBlocksKeepTheirSlotsAcrossPasses) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir tmp;
  const test::Reference ref = test::read_reference(tiny_model());
  auto model = Model::load(
      tiny_model(), on_sim(R"({"": 0, "model.layers.1": "cpu", "model.layers.2": "cpu"})", tmp.path()));
  // Two slots, two streamed layers: each is copied once, then stays.
  EXPECT_EQ(model->impl().weights->copied_bytes_per_pass(), 0u);
  EXPECT_EQ(bytes_copied_by_the_second_pass(*model, ref), 0u);
}

TEST(StagingSlots, StreamedBlocksSharingSlotsAreCopiedOncePerPass) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir tmp;
  const test::Reference ref = test::read_reference(tiny_model());
  auto model = Model::load(tiny_model(), on_sim(R"({"": 0, "model.layers": "cpu", "lm_head": "cpu"})", tmp.path()));
  // Four streamed blocks take turns in two slots: all their bytes move every pass.
  uint64_t streamed = 0;
  for (const TensorInfo& t : model->impl().weights->checkpoint().tensors())
    if (t.name.rfind("model.layers.", 0) == 0 || t.name == "lm_head.weight") streamed += t.nbytes;
  EXPECT_EQ(model->impl().weights->copied_bytes_per_pass(), streamed);
  EXPECT_EQ(bytes_copied_by_the_second_pass(*model, ref), streamed);
}

// The final norm is tiny: it takes the last layer's slot instead of a turn,
// so the head gets the other slot to itself (its fill can then start while
// the last layer computes) and stays there from one pass to the next.
TEST(StagingSlots, ASmallNormTakesTheSlotBeforeItSoTheHeadHasOneOfItsOwn) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir tmp;
  const test::Reference ref = test::read_reference(tiny_model());
  auto model = Model::load(
      tiny_model(),
      on_sim(R"({"": 0, "model.layers.2": "cpu", "model.norm": "cpu", "lm_head": "cpu"})", tmp.path()));
  uint64_t layer_and_norm = 0;
  for (const TensorInfo& t : model->impl().weights->checkpoint().tensors())
    if (t.name.rfind("model.layers.2.", 0) == 0 || t.name == "model.norm.weight") layer_and_norm += t.nbytes;
  EXPECT_EQ(model->impl().weights->copied_bytes_per_pass(), layer_and_norm);
  EXPECT_EQ(bytes_copied_by_the_second_pass(*model, ref), layer_and_norm);
}

// A tied head streams the embedding's tensor: it takes the embedding's slot,
// and since the two fills are the same, the slot is filled once and kept.
TEST(StagingSlots, ATiedHeadAndItsEmbeddingShareOneSlotFilledOnce) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir tmp;
  const fs::path model_dir = test::fixtures_dir() / "models" / "stories260k";
  const test::Reference ref = test::read_reference(model_dir);
  auto model =
      Model::load(model_dir, on_sim(R"({"": 0, "model.embed_tokens": "cpu", "lm_head": "cpu"})", tmp.path()));
  EXPECT_EQ(model->impl().weights->copied_bytes_per_pass(), 0u);
  Device& sim = model->impl().devices->resolve(plan::Device::gpu_(0));
  const auto first = model->logits(ref.input_ids, ref.rows, ref.tokens);
  const uint64_t after_first = sim.bytes_copied_in();
  const auto second = model->logits(ref.input_ids, ref.rows, ref.tokens);
  EXPECT_EQ(sim.bytes_copied_in(), after_first);
  EXPECT_TRUE(same_bits(first, second));
  ModelOptions cpu = test::with_threads(1);
  cpu.device_map = R"({"": "cpu"})";
  EXPECT_TRUE(same_bits(first, Model::load(model_dir, cpu)->logits(ref.input_ids, ref.rows, ref.tokens)));
}

// An untied embedding kept in RAM is a lookup: it runs on the CPU where its
// table lies, and only its output moves to sim:0; nothing is staged for it,
// in the plan or in the run.
TEST(StagingSlots, AnOffloadedEmbeddingRunsWhereItLies) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir tmp;
  const test::Reference ref = test::read_reference(tiny_model());
  auto model = Model::load(tiny_model(), on_sim(R"({"": 0, "model.embed_tokens": "cpu"})", tmp.path()));
  EXPECT_EQ(model->impl().weights->copied_bytes_per_pass(), 0u);
  for (const plan::DeviceUse& use : model->impl().usage.devices) {
    if (use.device.is_gpu()) {
      EXPECT_EQ(use.staging, 0.0) << "sim:0 stages nothing";
    }
  }
  // A pass copies the embedding's output (a row of floats per token) to
  // sim:0, not the table.
  const auto hidden = static_cast<uint64_t>(model->config().hidden_size);
  EXPECT_EQ(bytes_copied_by_the_second_pass(*model, ref),
            static_cast<uint64_t>(ref.rows * ref.tokens) * hidden * sizeof(float));
}

// Where the accelerator has room for one staging slot but not two, the model
// still runs: the plan falls back to one slot, copies in turn with compute.
TEST(StagingSlots, AnAcceleratorWithRoomForOneSlotStillRuns) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir tmp;
  const test::Reference ref = test::read_reference(tiny_model());
  ModelOptions o = on_sim(R"({"": "disk"})", tmp.path());
  double two_slots = 0;
  {
    auto roomy = Model::load(tiny_model(), o);
    for (const DeviceReport& d : roomy->devices())
      if (d.name == "sim:0") two_slots = d.planned_bytes;
  }
  ASSERT_GT(two_slots, 0);
  o.sim_devices = "1x" + std::to_string(static_cast<uint64_t>(two_slots) - 1);
  auto tight = Model::load(tiny_model(), o);
  const auto logits = tight->logits(ref.input_ids, ref.rows, ref.tokens);
  EXPECT_TRUE(same_bits(logits, all_on_cpu(ref)));
  for (const DeviceReport& d : tight->devices())
    if (d.name == "sim:0") {
      EXPECT_LT(d.planned_bytes, two_slots);
      EXPECT_LE(static_cast<double>(d.peak), d.planned_bytes);
    }
}

// Layers streamed from disk pass through the same host read slots and the
// same staging slots every other layer. With every tensor a whole number of
// 4 KiB pages (as in real checkpoints), layer i and layer i+2 copy between
// the same addresses, yet hold different weights: each must be copied.
TEST(StagingSlots, DiskLayersAtTheSameAddressesAreEachCopied) {
  test::TempDir tmp;
  SynthSpec spec;
  spec.hidden_size = 1024;  // f32 norms of 4 KiB; every matrix a multiple of 4 KiB too
  spec.intermediate_size = 256;
  spec.num_layers = 3;
  spec.num_heads = 8;
  spec.num_kv_heads = 2;
  spec.vocab_size = 512;
  spec.dtype = DType::F32;
  write_synthetic_checkpoint(spec, tmp.path() / "m");
  const std::vector<int32_t> ids = {1, 7, 42, 99, 3};

  ModelOptions cpu = test::with_threads(1);
  cpu.device_map = R"({"": "cpu"})";
  const auto want = Model::load(tmp.path() / "m", cpu)->logits(ids, 1, 5);
  auto model = Model::load(tmp.path() / "m", on_sim(R"({"": "disk"})", tmp.path() / "offload"));
  EXPECT_GT(model->impl().weights->copied_bytes_per_pass(), 0u);
  EXPECT_TRUE(same_bits(model->logits(ids, 1, 5), want));
  EXPECT_TRUE(same_bits(model->logits(ids, 1, 5), want)) << "second pass";
}

// A pass that stops inside a block (an error in its compute) leaves that
// block's slot marked in use and its disk read held; the next pass starts
// clean.
TEST(StagingSlots, APassCutShortInsideABlockLeavesTheNextPassCorrect) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir tmp;
  const test::Reference ref = test::read_reference(tiny_model());
  auto model = Model::load(tiny_model(), on_sim(R"({"": "disk"})", tmp.path() / "offload"));
  const auto before = model->logits(ref.input_ids, ref.rows, ref.tokens);
  model->impl().weights->onload(2);  // as if model.layers.1 threw after its hook ran
  const auto after = model->logits(ref.input_ids, ref.rows, ref.tokens);
  EXPECT_TRUE(same_bits(before, after));
  EXPECT_TRUE(same_bits(after, all_on_cpu(ref)));
}

// A read that fails while the next block's copy is being started (from the
// hook after a block) ends the pass; once the file is whole again, the run
// goes on with the right weights.
TEST(StagingSlots, AReadErrorMidPassLeavesTheNextPassCorrectOnceTheFileIsWhole) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir tmp;
  fs::copy(tiny_model(), tmp.path() / "m");
  for (const auto& e : fs::directory_iterator(tmp.path() / "m"))
    fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  const test::Reference ref = test::read_reference(tmp.path() / "m");
  auto model = Model::load(tmp.path() / "m", on_sim(R"({"": "disk"})", tmp.path() / "offload"));
  const auto before = model->logits(ref.input_ids, ref.rows, ref.tokens);

  // Cut the file after the first layer's tensors, so the embedding and the
  // first layer read fine and a later read fails.
  const fs::path weights = tmp.path() / "m" / "model.safetensors";
  const std::string whole = test::read_file(weights);
  uint64_t cut = 0;
  for (const TensorInfo& t : model->impl().weights->checkpoint().tensors())
    if (t.name.rfind("model.layers.0.", 0) == 0) cut = std::max(cut, t.file_offset + t.nbytes);
  ASSERT_GT(cut, 0u);
  fs::resize_file(weights, cut);
  EXPECT_THROW(model->logits(ref.input_ids, ref.rows, ref.tokens), Error);

  // Rewrite the same file in place (the reader keeps its descriptor).
  {
    std::FILE* f = std::fopen(weights.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::fwrite(whole.data(), 1, whole.size(), f), whole.size());
    std::fclose(f);
  }
  const auto after = model->logits(ref.input_ids, ref.rows, ref.tokens);
  EXPECT_TRUE(same_bits(before, after));
}

}  // namespace
}  // namespace strata
