// map_usage: what a device map costs on each device under strata's execution
// rule (accelerator modules run in place, cpu/disk modules on the main device).
#include <gtest/gtest.h>

#include <cmath>

#include "models/module_tree.h"
#include "plan/map_usage.h"
#include "plan/module_sizes.h"

namespace strata::plan {
namespace {

// A float32 Llama with 2 layers, small enough to size by hand.
ModuleTree tiny_llama(bool tied) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = 8;
  c.intermediate_size = 16;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 4;
  c.vocab_size = 32;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = tied;
  return module_tree_for(c, [](const std::string&) { return "float32"; });
}

// Hand sizes of that model, float32.
constexpr double kEmbed = 32 * 8 * 4;                                          // 1024
constexpr double kLayer = (8 * 8 + 4 * 8 + 4 * 8 + 8 * 8 + 3 * 16 * 8 + 2 * 8) * 4 + 2 * 4;  // weights + inv_freq
constexpr double kNorm = 8 * 4;
constexpr double kRotary = 2 * 4;  // model.rotary_emb.inv_freq

const std::vector<std::string> kNoSplit{"LlamaDecoderLayer"};

MemoryNeeds needs() {
  MemoryNeeds n;
  n.runtime_bytes = {{"model.layers.0", 100}, {"model.layers.1", 200}, {"lm_head", 50}};
  n.activation_bytes = 1000;
  n.staging_slots = 2;
  return n;
}

const DeviceUse& at(const MapUsage& u, const Device& d) {
  const DeviceUse* found = u.find(d);
  if (found == nullptr) throw std::runtime_error("device " + d.to_string() + " not in the usage");
  return *found;
}

TEST(MapUsage, HandSizedLayersMatchComputeModuleSizes) {
  const ModuleSizes sizes = compute_module_sizes(tiny_llama(false), {});
  EXPECT_EQ(sizes.at("model.layers.0"), kLayer);
  EXPECT_EQ(sizes.at("model.embed_tokens"), kEmbed);
}

TEST(MapUsage, OffloadedModulesExecuteOnTheMainAccelerator) {
  const ModuleTree tree = tiny_llama(true);
  const DeviceMap map = {{"model.embed_tokens", Device::gpu_(0)}, {"lm_head", Device::gpu_(0)},
                         {"model.layers.0", Device::gpu_(1)},     {"model.layers.1", Device::cpu_()},
                         {"model.norm", Device::disk_()},         {"model.rotary_emb", Device::disk_()}};
  const MaxMemory mm = {{Device::gpu_(0), 1e6}, {Device::gpu_(1), 2e6}, {Device::cpu_(), 3e6}};
  const MapUsage u = map_usage(tree, map, mm, kNoSplit, {}, needs(), Device::gpu_(0));
  ASSERT_EQ(u.devices.size(), 4u) << "the budgets' devices plus disk, which the map uses";
  EXPECT_EQ(u.devices[0].device, Device::gpu_(0));
  EXPECT_EQ(u.devices[3].device, Device::disk_());
  EXPECT_TRUE(u.unmapped.empty());

  const DeviceUse& g0 = at(u, Device::gpu_(0));
  EXPECT_EQ(g0.budget, 1e6);
  EXPECT_EQ(g0.weights, kEmbed) << "the tied head is stored once, with the embedding";
  EXPECT_EQ(g0.runtime, 50 + 200) << "lm_head's own, plus the KV of layer 1, which executes here";
  EXPECT_EQ(g0.activations, 1000);
  // Offloaded units take turns in two slots, each the size of its largest
  // unit: at most the two largest units executing here (layer 1, the norm).
  EXPECT_EQ(g0.staging, kLayer + std::max(kNorm, kRotary));
  EXPECT_EQ(g0.total(), kEmbed + 250 + 1000 + kLayer + std::max(kNorm, kRotary));

  const DeviceUse& g1 = at(u, Device::gpu_(1));
  EXPECT_EQ(g1.weights, kLayer);
  EXPECT_EQ(g1.runtime, 100);
  EXPECT_EQ(g1.activations, 1000);
  EXPECT_EQ(g1.staging, 0);

  const DeviceUse& cpu = at(u, Device::cpu_());
  EXPECT_EQ(cpu.weights, kLayer);
  EXPECT_EQ(cpu.runtime + cpu.activations, 0) << "cpu holds layer 1 but does not execute it";
  EXPECT_EQ(cpu.staging, 2 * std::max(kNorm, kRotary)) << "reads from disk are staged in RAM, two slots";

  const DeviceUse& disk = at(u, Device::disk_());
  EXPECT_EQ(disk.weights, kNorm + kRotary);
  EXPECT_TRUE(std::isinf(disk.budget));
}

TEST(MapUsage, WithoutAcceleratorTheCpuExecutesAndStagesDiskReads) {
  const ModuleTree tree = tiny_llama(false);
  const DeviceMap map = {{"", Device::cpu_()}, {"model.layers.1", Device::disk_()}};  // longest prefix wins
  const MapUsage u = map_usage(tree, map, {{Device::cpu_(), 1e6}}, kNoSplit, {}, needs(), std::nullopt);
  ASSERT_EQ(u.devices.size(), 2u);
  const DeviceUse& cpu = at(u, Device::cpu_());
  EXPECT_EQ(cpu.weights, 2 * kEmbed + kLayer + kNorm + kRotary);
  EXPECT_EQ(cpu.runtime, 350);
  EXPECT_EQ(cpu.activations, 1000);
  EXPECT_EQ(cpu.staging, 2 * kLayer) << "the disk layer is read ahead into two host slots";
  EXPECT_EQ(at(u, Device::disk_()).weights, kLayer);
  EXPECT_FALSE(u.main_accelerator.has_value());
}

TEST(MapUsage, TiedHeadAwayFromItsEmbeddingIsStagedWhole) {
  const ModuleTree tree = tiny_llama(true);
  const DeviceMap map = {{"", Device::gpu_(0)}, {"model.embed_tokens", Device::cpu_()}, {"lm_head", Device::cpu_()}};
  const MapUsage u = map_usage(tree, map, {{Device::gpu_(0), 1e6}, {Device::cpu_(), 1e6}}, kNoSplit, {}, {},
                               Device::gpu_(0));
  EXPECT_EQ(at(u, Device::cpu_()).weights, kEmbed);
  // lm_head's own size is 0 (its weight is the embedding's), but running it
  // on the accelerator copies the whole matrix there, rounded up to the
  // 64-byte granule of an allocation (bounded by 64 per borrowed tensor).
  EXPECT_EQ(at(u, Device::gpu_(0)).staging, kEmbed + 64);
  EXPECT_EQ(at(u, Device::gpu_(0)).weights, 2 * kLayer + kNorm + kRotary);
}

TEST(MapUsage, ATiedEmbeddingAndHeadShareOneStagingSlot) {
  const ModuleTree tree = tiny_llama(true);
  const DeviceMap map = {{"", Device::gpu_(0)}, {"model.embed_tokens", Device::cpu_()}, {"lm_head", Device::cpu_()}};
  // Two slots, but the embedding and its head stage the same matrix in one:
  // it is billed once, not twice.
  const MapUsage u = map_usage(tree, map, {{Device::gpu_(0), 1e6}, {Device::cpu_(), 1e6}}, kNoSplit, {}, needs(),
                               Device::gpu_(0));
  EXPECT_EQ(at(u, Device::gpu_(0)).staging, kEmbed + 64);
}

TEST(MapUsage, AnOffloadedLookupExecutesOnTheCpuAndIsNotStaged) {
  const ModuleTree tree = tiny_llama(false);
  MemoryNeeds n = needs();
  n.local_when_offloaded = {"model.embed_tokens"};
  const DeviceMap map = {{"", Device::gpu_(0)}, {"model.embed_tokens", Device::disk_()}};
  // With a cpu budget, the cpu executes the embedding: activations there.
  const MapUsage with_cpu = map_usage(tree, map, {{Device::gpu_(0), 1e6}, {Device::cpu_(), 1e6}}, kNoSplit, {}, n,
                                      Device::gpu_(0));
  EXPECT_EQ(at(with_cpu, Device::gpu_(0)).staging, 0) << "nothing offloaded runs on the accelerator";
  EXPECT_EQ(at(with_cpu, Device::cpu_()).activations, 1000);
  EXPECT_EQ(at(with_cpu, Device::cpu_()).staging, 2 * kEmbed) << "its disk reads, two slots";
  // Without a cpu key the host is not budgeted, and nothing is billed there.
  const MapUsage no_cpu = map_usage(tree, map, {{Device::gpu_(0), 1e6}}, kNoSplit, {}, n, Device::gpu_(0));
  EXPECT_EQ(no_cpu.find(Device::cpu_()), nullptr);
  EXPECT_EQ(at(no_cpu, Device::gpu_(0)).staging, 0);
}

TEST(MapUsage, UnmappedUnitsAreReportedNotCounted) {
  const ModuleTree tree = tiny_llama(false);
  const DeviceMap map = {{"model.embed_tokens", Device::gpu_(0)}, {"model.layers", Device::gpu_(0)},
                         {"lm_head", Device::gpu_(0)}};
  const MapUsage u = map_usage(tree, map, {{Device::gpu_(0), 1e6}}, kNoSplit, {}, {}, Device::gpu_(0));
  EXPECT_EQ(u.unmapped, (std::vector<std::string>{"model.norm", "model.rotary_emb"}));
  EXPECT_EQ(at(u, Device::gpu_(0)).weights, 2 * kEmbed + 2 * kLayer);
}

TEST(MapUsage, RuntimeOfASplitLayerGoesWithItsFirstPart) {
  // Without no_split classes the layer's parts are placed apart; its KV cache
  // (keyed by the layer) goes where its first part, q_proj, executes.
  const ModuleTree tree = tiny_llama(false);
  const DeviceMap map = {{"", Device::gpu_(0)}, {"model.layers.1.self_attn.q_proj", Device::gpu_(1)}};
  const MapUsage u = map_usage(tree, map, {{Device::gpu_(0), 1e6}, {Device::gpu_(1), 1e6}}, {}, {}, needs(),
                               Device::gpu_(0));
  EXPECT_EQ(at(u, Device::gpu_(1)).runtime, 200);
  EXPECT_EQ(at(u, Device::gpu_(1)).weights, 8 * 8 * 4);
  EXPECT_EQ(at(u, Device::gpu_(0)).runtime, 150);

  MemoryNeeds stray = needs();
  stray.runtime_bytes["no.such.module"] = 7;  // charged to the main device
  const PlacementUnits units = placement_units(tree, {}, {}, stray);
  EXPECT_EQ(units.unattributed_runtime, 7);
  EXPECT_EQ(units.units.front().name, "model.embed_tokens");
  EXPECT_EQ(units.units[1].name, "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(units.units[1].runtime_bytes, 100);
}

TEST(MapUsage, DtypeOverrideShrinksWeights) {
  SizeOptions half;
  half.dtype = "float16";
  const MapUsage u = map_usage(tiny_llama(false), {{"", Device::cpu_()}}, {{Device::cpu_(), 1e6}}, kNoSplit, half,
                               {}, std::nullopt);
  // float32 tensors count 2 bytes each under dtype=float16, inv_freq included (Accelerate's rule).
  EXPECT_EQ(at(u, Device::cpu_()).weights, (2 * kEmbed + 2 * kLayer + kNorm + kRotary) / 2);
}

}  // namespace
}  // namespace strata::plan
