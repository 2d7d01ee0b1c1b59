// Synthetic checkpoints: what `strata synth` writes loads like a real model,
// with the HF names and shapes, the requested dtype, sharding and tokenizer,
// and the bytes depend on the seed alone.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "backend/cpu/kernels.h"
#include "core/byte_size.h"
#include "format/safetensors.h"
#include "models/architecture.h"
#include "synth/synth_checkpoint.h"
#include "synth/synth_tokenizer.h"
#include "strata/error.h"
#include "strata/model.h"
#include "strata/model_config.h"
#include "strata/tokenizer.h"
#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

using test::read_file;

SynthSpec tiny(DType dtype, uint64_t seed = 7) {
  SynthSpec spec = synth_preset("tiny");
  spec.dtype = dtype;
  spec.seed = seed;
  return spec;
}

// A tiny mixture of experts of the architecture: 4 experts, 2 per token, as
// wide as each family's config says (Mixtral: intermediate_size).
SynthSpec tiny_moe(const std::string& architecture, DType dtype = DType::BF16) {
  SynthSpec spec = tiny(dtype);
  spec.architecture = architecture;
  spec.num_experts = 4;
  spec.num_experts_per_tok = 2;
  if (architecture != "MixtralForCausalLM") spec.moe_intermediate_size = 48;
  if (architecture == "Qwen2MoeForCausalLM") spec.shared_expert_intermediate_size = 96;
  return spec;
}

// The HF names and shapes of a Llama-family checkpoint, spelled out
// independently of synth_layout.
std::map<std::string, std::vector<int64_t>> expected_shapes(const SynthSpec& s, bool qkv_bias) {
  const int64_t h = s.hidden_size, d = s.resolved_head_dim(), q = s.num_heads * d, kv = s.kv_heads() * d;
  std::map<std::string, std::vector<int64_t>> out{{"model.embed_tokens.weight", {s.vocab_size, h}},
                                                  {"model.norm.weight", {h}}};
  if (!s.tie_word_embeddings) out["lm_head.weight"] = {s.vocab_size, h};
  for (int64_t i = 0; i < s.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    out[p + "input_layernorm.weight"] = {h};
    out[p + "post_attention_layernorm.weight"] = {h};
    out[p + "self_attn.q_proj.weight"] = {q, h};
    out[p + "self_attn.k_proj.weight"] = {kv, h};
    out[p + "self_attn.v_proj.weight"] = {kv, h};
    out[p + "self_attn.o_proj.weight"] = {h, q};
    out[p + "mlp.gate_proj.weight"] = {s.intermediate_size, h};
    out[p + "mlp.up_proj.weight"] = {s.intermediate_size, h};
    out[p + "mlp.down_proj.weight"] = {h, s.intermediate_size};
    if (qkv_bias) {
      out[p + "self_attn.q_proj.bias"] = {q};
      out[p + "self_attn.k_proj.bias"] = {kv};
      out[p + "self_attn.v_proj.bias"] = {kv};
    }
  }
  return out;
}

void expect_checkpoint_matches(const fs::path& dir, const SynthSpec& spec, bool qkv_bias) {
  const Checkpoint ckpt = Checkpoint::open(dir);
  const auto expected = expected_shapes(spec, qkv_bias);
  ASSERT_EQ(ckpt.tensors().size(), expected.size());
  for (const auto& [name, shape] : expected) {
    const TensorInfo* t = ckpt.find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->shape, shape) << name;
    EXPECT_EQ(t->dtype, spec.dtype) << name;
  }
}

std::vector<float> as_f32(const Checkpoint& ckpt, const std::string& name) {
  const TensorInfo& t = ckpt.get(name);
  std::vector<float> out(static_cast<size_t>(t.numel()));
  cpu::to_f32(t.dtype, ckpt.data(t).data(), out.data(), out.size());
  return out;
}

TEST(Synth, TinyModelInEachDtypeLoadsWithHfNamesShapesAndConfig) {
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    SCOPED_TRACE(std::string(dtype_name(dtype)));
    TempDir dir;
    const SynthSpec spec = tiny(dtype);
    const SynthResult r = write_synthetic_checkpoint(spec, dir.path());
    EXPECT_EQ(r.shards, 1u);
    EXPECT_TRUE(fs::exists(dir.path() / "model.safetensors"));
    EXPECT_FALSE(fs::exists(dir.path() / "model.safetensors.index.json"));
    expect_checkpoint_matches(dir.path(), spec, false);

    const ModelConfig c = ModelConfig::from_file(dir.path() / "config.json");
    EXPECT_EQ(c.architecture, "LlamaForCausalLM");
    EXPECT_EQ(c.model_type, "llama");
    EXPECT_EQ(c.hidden_size, 64);
    EXPECT_EQ(c.intermediate_size, 176);
    EXPECT_EQ(c.num_layers, 2);
    EXPECT_EQ(c.num_heads, 4);
    EXPECT_EQ(c.num_kv_heads, 2);
    EXPECT_EQ(c.head_dim, 16);
    EXPECT_EQ(c.vocab_size, 512);
    EXPECT_FALSE(c.tie_word_embeddings);
    EXPECT_EQ(c.bos_token_id, 1);
    EXPECT_EQ(c.eos_token_ids, std::vector<int32_t>{2});
    EXPECT_EQ(c.torch_dtype, dtype == DType::F32 ? "float32" : dtype == DType::F16 ? "float16" : "bfloat16");
    const GenerationConfig g = GenerationConfig::from_dir(dir.path());
    EXPECT_EQ(g.bos_token_id, 1);
    EXPECT_EQ(g.eos_token_ids, std::vector<int32_t>{2});

    uint64_t on_disk = 0;
    for (const auto& f : r.files) on_disk += fs::file_size(f);
    EXPECT_EQ(on_disk, r.file_bytes);
    EXPECT_EQ(r.params, 158016);  // 2 x 512 x 64 + 2 x (64 x 64 x 2 + 32 x 64 x 2 + 3 x 176 x 64 + 128) + 64
  }
}

// A tensor's values drawn by the recipe: uniform with this mean and std.
struct RecipeValues {
  std::string name;
  double mean, std;
};

void expect_recipe(const Checkpoint& ckpt, const RecipeValues& e) {
  const std::vector<float> v = as_f32(ckpt, e.name);
  double sum = 0, sq = 0, most = 0;
  for (float x : v) sum += x;
  const double mean = sum / static_cast<double>(v.size());
  for (float x : v) {
    sq += (x - mean) * (x - mean);
    most = std::max(most, std::fabs(x - e.mean));
  }
  const double sd = std::sqrt(sq / static_cast<double>(v.size()));
  // Sampling error of the mean is std/sqrt(n); 5 of those. The std of a
  // uniform sample of n >= 64 is within 15% with overwhelming odds.
  EXPECT_NEAR(mean, e.mean, 5 * e.std / std::sqrt(static_cast<double>(v.size()))) << e.name;
  EXPECT_NEAR(sd, e.std, 0.15 * e.std) << e.name;
  // Rounding to the stored dtype may carry the widest draws past the
  // uniform's edge by half an ulp: up to 2^-8 relative for bf16 (8
  // significant bits), 2^-11 for f16 (11).
  const DType dtype = ckpt.get(e.name).dtype;
  const double rounding = dtype == DType::BF16 ? 0x1p-8 : dtype == DType::F16 ? 0x1p-11 : 1e-4;
  EXPECT_LE(most, std::sqrt(3.0) * e.std * (1 + rounding)) << e.name << " exceeds the uniform's range";
}

// Mean and std of the drawn values follow the fixtures' recipe: weights
// N(0, 1/in), norms 1 + 0.1 N, biases 0.1 N (here uniform with that std).
TEST(Synth, ValuesHaveTheRecipesMeanAndStd) {
  TempDir dir;
  SynthSpec spec = tiny(DType::F32);
  spec.architecture = "Qwen2ForCausalLM";
  write_synthetic_checkpoint(spec, dir.path());
  const Checkpoint ckpt = Checkpoint::open(dir.path());
  for (const RecipeValues& e : {RecipeValues{"model.embed_tokens.weight", 0, 1 / 8.0},
                                RecipeValues{"model.layers.0.mlp.down_proj.weight", 0, 1 / std::sqrt(176.0)},
                                RecipeValues{"model.layers.1.input_layernorm.weight", 1, 0.1},
                                RecipeValues{"model.layers.0.self_attn.q_proj.bias", 0, 0.1}})
    expect_recipe(ckpt, e);
}

// The vectorized conversions in the generator round exactly like the
// engine's reference f32_to_bf16 / f32_to_f16, subnormal f16 included.
TEST(Synth, HalfPrecisionBytesAreTheRoundedF32Values) {
  TempDir f32_dir, bf16_dir, f16_dir;
  write_synthetic_checkpoint(tiny(DType::F32), f32_dir.path());
  write_synthetic_checkpoint(tiny(DType::BF16), bf16_dir.path());
  write_synthetic_checkpoint(tiny(DType::F16), f16_dir.path());
  const Checkpoint f32 = Checkpoint::open(f32_dir.path());
  const Checkpoint bf16 = Checkpoint::open(bf16_dir.path());
  const Checkpoint f16 = Checkpoint::open(f16_dir.path());
  size_t subnormal_f16 = 0;
  for (const TensorInfo& t : f32.tensors()) {
    std::vector<float> values(static_cast<size_t>(t.numel()));
    std::memcpy(values.data(), f32.data(t).data(), t.nbytes);
    std::vector<uint16_t> b(values.size()), h(values.size());
    std::memcpy(b.data(), bf16.data(bf16.get(t.name)).data(), b.size() * 2);
    std::memcpy(h.data(), f16.data(f16.get(t.name)).data(), h.size() * 2);
    for (size_t i = 0; i < values.size(); ++i) {
      ASSERT_EQ(b[i], cpu::f32_to_bf16(values[i])) << t.name << "[" << i << "] = " << values[i];
      ASSERT_EQ(h[i], cpu::f32_to_f16(values[i])) << t.name << "[" << i << "] = " << values[i];
      if ((h[i] & 0x7C00) == 0) ++subnormal_f16;
    }
  }
  // 158k values uniform near 0 put a few below f16's normal range (6.1e-5),
  // so the subnormal path was exercised.
  EXPECT_GT(subnormal_f16, 0u);
}

TEST(Synth, ShardsFollowTheSizeLimitAndMatchTheSingleFile) {
  TempDir single_dir, sharded_dir;
  SynthSpec spec = tiny(DType::BF16);
  write_synthetic_checkpoint(spec, single_dir.path());
  spec.shard_size = 100'000;  // the 65,536-byte embedding and lm_head each fill most of a shard
  const SynthResult r = write_synthetic_checkpoint(spec, sharded_dir.path());
  ASSERT_GE(r.shards, 3u);
  EXPECT_FALSE(fs::exists(sharded_dir.path() / "model.safetensors"));
  expect_checkpoint_matches(sharded_dir.path(), spec, false);

  const auto index = nlohmann::json::parse(read_file(sharded_dir.path() / "model.safetensors.index.json"));
  uint64_t total = 0;
  std::map<std::string, uint64_t> per_file;
  const Checkpoint ckpt = Checkpoint::open(sharded_dir.path());
  for (const TensorInfo& t : ckpt.tensors()) {
    total += t.nbytes;
    per_file[index["weight_map"][t.name].get<std::string>()] += t.nbytes;
  }
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  const auto shard_file = [&](size_t i) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, r.shards);
    return std::string(name);
  };
  ASSERT_EQ(per_file.size(), r.shards);
  for (size_t i = 0; i < r.shards; ++i) {
    ASSERT_TRUE(per_file.count(shard_file(i))) << shard_file(i);
    EXPECT_LE(per_file[shard_file(i)], spec.shard_size) << shard_file(i);
  }
  // HF order: the embedding opens the first shard, lm_head closes the last.
  EXPECT_EQ(index["weight_map"]["model.embed_tokens.weight"], shard_file(0));
  EXPECT_EQ(index["weight_map"]["lm_head.weight"], shard_file(r.shards - 1));

  // Sharding (and so chunking) changes no value.
  const Checkpoint single = Checkpoint::open(single_dir.path());
  for (const TensorInfo& t : single.tensors()) {
    const auto a = single.data(t);
    const auto b = ckpt.data(ckpt.get(t.name));
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size()), 0) << t.name;
  }
}

TEST(Synth, BytesDependOnTheSeedOnlyNotOnThreadsOrChunks) {
  TempDir a, b, c;
  // A model with tensors spanning several 64Ki-element blocks and chunks.
  SynthSpec spec = tiny(DType::BF16, 42);
  spec.vocab_size = 3000;
  spec.hidden_size = 128;
  SynthOptions one_thread;
  one_thread.threads = 1;
  SynthOptions many_small;
  many_small.threads = 4;
  many_small.chunk_bytes = 1;  // rounded up to one block per chunk
  write_synthetic_checkpoint(spec, a.path(), one_thread);
  write_synthetic_checkpoint(spec, b.path(), many_small);
  spec.seed = 43;
  write_synthetic_checkpoint(spec, c.path(), one_thread);
  const Checkpoint ca = Checkpoint::open(a.path()), cc = Checkpoint::open(c.path());
  for (const char* file : {"model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"})
    EXPECT_EQ(read_file(a.path() / file), read_file(b.path() / file)) << file;
  EXPECT_NE(read_file(a.path() / "model.safetensors"), read_file(c.path() / "model.safetensors"));
  // Any block-aligned range can be made alone, as benchmarks may need.
  const TensorInfo& embed = ca.get("model.embed_tokens.weight");
  ASSERT_GT(embed.numel(), 2 * kSynthBlockElems);
  SynthTensor embed_spec;
  embed_spec.name = embed.name;
  embed_spec.shape = embed.shape;
  embed_spec.numel = embed.numel();
  std::vector<uint16_t> part(1000);
  spec.seed = 42;
  synth_fill(spec, embed_spec, kSynthBlockElems, 1000, part.data());
  EXPECT_EQ(std::memcmp(part.data(), ca.data(embed).data() + 2 * kSynthBlockElems, 2000), 0);
  EXPECT_THROW(synth_fill(spec, embed_spec, 5, 10, part.data()), Error);

  // Each tensor differs, not just one.
  for (const TensorInfo& t : ca.tensors()) {
    const auto x = ca.data(t), y = cc.data(cc.get(t.name));
    EXPECT_NE(std::memcmp(x.data(), y.data(), x.size()), 0) << t.name;
  }
}

TEST(Synth, Qwen2AddsBiasesAndTiedModelsHaveNoLmHead) {
  TempDir dir;
  SynthSpec spec = tiny(DType::F32);
  spec.architecture = "Qwen2ForCausalLM";
  spec.tie_word_embeddings = true;
  write_synthetic_checkpoint(spec, dir.path());
  expect_checkpoint_matches(dir.path(), spec, true);
  const Checkpoint ckpt = Checkpoint::open(dir.path());
  EXPECT_EQ(ckpt.find("lm_head.weight"), nullptr);
  const ModelConfig c = ModelConfig::from_file(dir.path() / "config.json");
  EXPECT_EQ(c.architecture, "Qwen2ForCausalLM");
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
}

TEST(Synth, PresetsHaveThePublishedParameterCounts) {
  // Parameter counts of the real checkpoints (HF model cards / safetensors totals).
  EXPECT_EQ(synth_layout(synth_preset("tinyllama-1.1b")).params, 1'100'048'384);
  EXPECT_EQ(synth_layout(synth_preset("llama-3-8b")).params, 8'030'261'248);
  EXPECT_EQ(synth_layout(synth_preset("llama-3.2-1b")).params, 1'235'814'400);
  EXPECT_EQ(synth_layout(synth_preset("qwen2-0.5b")).params, 494'032'768);
  // Qwen3-0.6B's config.json on the hub; its model card says 0.6B (0.44B without embeddings).
  EXPECT_EQ(synth_layout(synth_preset("qwen3-0.6b")).params, 596'049'920);
  // The mixtures of experts: Mixtral-8x7B's 46.7B (32 x (attention 41,943,040 + router 32,768 + 8 experts
  // of 3 x 14336 x 4096 + norms 8,192) + 2 x 32000 x 4096 + 4096), and Qwen3-30B-A3B's 30.5B (48 x
  // (attention 18,874,368 + q/k norms 256 + router 262,144 + 128 experts of 3 x 768 x 2048 + norms 4,096)
  // + 2 x 151936 x 2048 + 2048).
  EXPECT_EQ(synth_layout(synth_preset("mixtral-8x7b")).params, 46'702'792'704);
  EXPECT_EQ(synth_layout(synth_preset("qwen3-30b-a3b")).params, 30'532'122'624);
  const SynthLayout l3 = synth_layout(synth_preset("llama-3-8b"));
  EXPECT_EQ(l3.data_bytes, 2 * 8'030'261'248ull);
  EXPECT_EQ(l3.shard_files.size(), 9u);  // 16 GB in files of at most 2 GB
  EXPECT_EQ(l3.shard_files.front(), "model-00001-of-00009.safetensors");
  EXPECT_THROW(synth_preset("gpt-5"), Error);
}

// The expert tensors of the MoE presets in HF's names and shapes, spelled out
// independently of the family descriptions: a 2-layer cut of each is cheap to lay out.
TEST(Synth, MoePresetsHaveTheHubsExpertTensors) {
  const auto shapes = [](SynthSpec spec) {
    spec.num_layers = 2;
    std::map<std::string, std::vector<int64_t>> out;
    for (const SynthTensor& t : synth_layout(spec).tensors) out[t.name] = t.shape;
    return out;
  };
  auto mixtral = shapes(synth_preset("mixtral-8x7b"));
  const std::string m = "model.layers.1.block_sparse_moe.";
  EXPECT_EQ(mixtral[m + "gate.weight"], (std::vector<int64_t>{8, 4096}));
  EXPECT_EQ(mixtral[m + "experts.7.w1.weight"], (std::vector<int64_t>{14336, 4096}));
  EXPECT_EQ(mixtral[m + "experts.7.w2.weight"], (std::vector<int64_t>{4096, 14336}));
  EXPECT_EQ(mixtral[m + "experts.7.w3.weight"], (std::vector<int64_t>{14336, 4096}));
  EXPECT_EQ(mixtral.count(m + "experts.8.w1.weight"), 0u);
  EXPECT_EQ(mixtral.size(), 3u + 2 * (4 + 2 + 1 + 8 * 3));  // embed, norm, head; attention, norms, router, experts

  auto qwen = shapes(synth_preset("qwen3-30b-a3b"));
  const std::string q = "model.layers.1.";
  EXPECT_EQ(qwen[q + "mlp.gate.weight"], (std::vector<int64_t>{128, 2048}));
  EXPECT_EQ(qwen[q + "mlp.experts.127.gate_proj.weight"], (std::vector<int64_t>{768, 2048}));
  EXPECT_EQ(qwen[q + "mlp.experts.127.up_proj.weight"], (std::vector<int64_t>{768, 2048}));
  EXPECT_EQ(qwen[q + "mlp.experts.127.down_proj.weight"], (std::vector<int64_t>{2048, 768}));
  EXPECT_EQ(qwen[q + "self_attn.q_proj.weight"], (std::vector<int64_t>{4096, 2048}));
  EXPECT_EQ(qwen[q + "self_attn.k_norm.weight"], (std::vector<int64_t>{128}));
  EXPECT_EQ(qwen.count(q + "mlp.gate_proj.weight"), 0u) << "no dense MLP: every layer is sparse";
  EXPECT_EQ(qwen.size(), 3u + 2 * (4 + 2 + 2 + 1 + 128 * 3));  // ... attention, q/k norms, norms, router, experts
}

TEST(Synth, Llama3PresetConfigParsesWithRopeScaling) {
  TempDir dir;
  // The llama-3.2-1b config at a tiny width: the config is what matters here.
  SynthSpec spec = synth_preset("llama-3.2-1b");
  spec.hidden_size = 64;
  spec.intermediate_size = 128;
  spec.num_layers = 1;
  spec.num_heads = 4;
  spec.num_kv_heads = 2;
  spec.vocab_size = 300;
  write_synthetic_checkpoint(spec, dir.path());
  const ModelConfig c = ModelConfig::from_file(dir.path() / "config.json");
  ASSERT_TRUE(c.rope_llama3.has_value());
  EXPECT_EQ(c.rope_llama3->factor, 32.0);
  EXPECT_EQ(c.rope_llama3->original_max_position_embeddings, 8192.0);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_TRUE(c.tie_word_embeddings);
}

TEST(Synth, ParsesByteSizesLikeMaxMemory) {
  EXPECT_EQ(parse_byte_size("2GB"), 2'000'000'000u);
  EXPECT_EQ(parse_byte_size("500MB"), 500'000'000u);
  EXPECT_EQ(parse_byte_size("1GiB"), 1ull << 30);
  EXPECT_EQ(parse_byte_size("1.5GiB"), 3ull << 29);
  EXPECT_EQ(parse_byte_size("64KiB"), 65536u);
  EXPECT_EQ(parse_byte_size("4096"), 4096u);
  EXPECT_EQ(parse_byte_size("10 kb"), 10'000u);
  for (const char* bad : {"", "GB", "2XB", "-1GB", "0", "1.2.3GB", "0.1B"}) EXPECT_THROW(parse_byte_size(bad), Error) << bad;
}

TEST(Synth, RejectsBadSpecsBeforeWriting) {
  TempDir dir;
  const auto rejects = [&](SynthSpec spec) {
    EXPECT_THROW(write_synthetic_checkpoint(spec, dir.path() / "out"), Error);
    EXPECT_FALSE(fs::exists(dir.path() / "out"));
  };
  SynthSpec s = tiny(DType::F32);
  s.vocab_size = 258;  // one short of 3 special + 256 bytes
  rejects(s);
  s = tiny(DType::F32);
  s.num_kv_heads = 3;
  rejects(s);
  s = tiny(DType::F32);
  s.head_dim = 7;
  rejects(s);
  s = tiny(DType::I32);
  rejects(s);
  s = tiny(DType::F32);
  s.architecture = "GPT2LMHeadModel";
  rejects(s);
  // Experts only where the architecture has them, and in a shape its config can say.
  s = tiny(DType::F32);
  s.num_experts = 4;  // a dense Llama
  rejects(s);
  s = tiny_moe("MixtralForCausalLM");
  s.num_experts_per_tok = 5;  // more than the 4 experts
  rejects(s);
  s = tiny_moe("MixtralForCausalLM");
  s.moe_intermediate_size = 32;  // Mixtral's experts are intermediate_size wide
  rejects(s);
  s = tiny_moe("MixtralForCausalLM");
  s.decoder_sparse_step = 2;  // every Mixtral layer is sparse
  rejects(s);
  s = tiny_moe("Qwen3MoeForCausalLM");
  s.num_experts = 0;
  rejects(s);
  s = tiny_moe("Qwen3MoeForCausalLM");
  s.moe_intermediate_size = 0;
  rejects(s);
  s = tiny_moe("Qwen3MoeForCausalLM");
  s.shared_expert_intermediate_size = 32;  // only Qwen2-MoE has a shared expert
  rejects(s);
  s = tiny_moe("Qwen2MoeForCausalLM");
  s.shared_expert_intermediate_size = 0;
  rejects(s);
  try {
    SynthSpec small = tiny(DType::F32);
    small.vocab_size = 100;
    write_synthetic_checkpoint(small, dir.path() / "out");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("259"), std::string::npos) << e.what();
  }
}

TEST(Synth, RefusesANonEmptyDirectoryUnlessForced) {
  TempDir dir;
  std::ofstream(dir.path() / "notes.txt") << "keep me";
  std::ofstream(dir.path() / "model-00001-of-00002.safetensors") << "stale";
  EXPECT_THROW(write_synthetic_checkpoint(tiny(DType::F32), dir.path()), Error);
  EXPECT_FALSE(fs::exists(dir.path() / "config.json"));

  SynthOptions force;
  force.force = true;
  write_synthetic_checkpoint(tiny(DType::F32), dir.path(), force);
  // Stale shards a loader could confuse with ours are gone; other files stay.
  EXPECT_FALSE(fs::exists(dir.path() / "model-00001-of-00002.safetensors"));
  EXPECT_TRUE(fs::exists(dir.path() / "notes.txt"));
  expect_checkpoint_matches(dir.path(), tiny(DType::F32), false);
}

TEST(Synth, TokenizerCoversTheVocabAndRoundTrips) {
  TempDir dir;
  write_synthetic_checkpoint(tiny(DType::BF16), dir.path());
  const Tokenizer tok = Tokenizer::from_dir(dir.path());
  EXPECT_EQ(tok.vocab_size(), 512);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.token_to_id("<unk>"), 0);
  EXPECT_TRUE(tok.is_special(1));
  for (const std::string text : {"Hello world", "Once upon a time, the little story.\n\n  two  spaces",
                                 "ümlaut – 日本語 🙂", ""}) {
    const std::vector<int32_t> ids = tok.encode(text);
    EXPECT_EQ(tok.decode(ids), text);
    for (int32_t id : ids) EXPECT_TRUE(id >= 3 && id < 512) << id;
    const std::vector<int32_t> with_bos = tok.encode(text, true);
    ASSERT_EQ(with_bos.size(), ids.size() + 1) << "BOS once";
    EXPECT_EQ(with_bos.front(), 1);
  }
  // Merges make common words single tokens: " world" and "Hello" are built in.
  EXPECT_LE(tok.encode("Hello world").size(), 2u);
  // Every id decodes to something, so any sampled id prints.
  for (int32_t id = 3; id < 512; ++id) EXPECT_FALSE(tok.decode(std::vector<int32_t>{id}).empty()) << id;
}

TEST(Synth, TokenizerJsonIsAValidBpeOfExactlyVEntries) {
  for (int64_t v : {kSynthMinVocab, int64_t{300}, int64_t{20000}}) {
    SCOPED_TRACE(v);
    const SynthTokenizerFiles files = make_synthetic_tokenizer(v);
    const auto doc = nlohmann::json::parse(files.tokenizer_json);
    const auto& vocab = doc["model"]["vocab"];
    ASSERT_EQ(static_cast<int64_t>(vocab.size()), v);
    std::set<int64_t> ids;
    for (const auto& [token, id] : vocab.items()) ids.insert(id.get<int64_t>());
    ASSERT_EQ(static_cast<int64_t>(ids.size()), v);
    EXPECT_EQ(*ids.begin(), 0);
    EXPECT_EQ(*ids.rbegin(), v - 1);
    // One merge per merged token; its parts exist and come before the result.
    const auto& merges = doc["model"]["merges"];
    ASSERT_EQ(static_cast<int64_t>(merges.size()), v - kSynthMinVocab);
    for (const auto& m : merges) {
      const std::string rule = m.get<std::string>();
      const size_t space = rule.find(' ');
      ASSERT_NE(space, std::string::npos) << rule;
      const std::string a = rule.substr(0, space), b = rule.substr(space + 1);
      ASSERT_TRUE(vocab.contains(a) && vocab.contains(b) && vocab.contains(a + b)) << rule;
      EXPECT_LT(vocab[a].get<int64_t>(), vocab[a + b].get<int64_t>()) << rule;
      EXPECT_LT(vocab[b].get<int64_t>(), vocab[a + b].get<int64_t>()) << rule;
    }
  }
  // A smaller vocabulary is a prefix of a larger one.
  const auto small = nlohmann::json::parse(make_synthetic_tokenizer(1000).tokenizer_json)["model"]["vocab"];
  const auto large = nlohmann::json::parse(make_synthetic_tokenizer(2000).tokenizer_json)["model"]["vocab"];
  for (const auto& [token, id] : small.items()) EXPECT_EQ(large.value(token, -1), id.get<int>()) << token;
  EXPECT_THROW(make_synthetic_tokenizer(258), Error);
}

// Like a trained vocabulary, every merged token is what BPE makes of its own
// text, so encoding text can produce any of them.
TEST(Synth, EveryMergedTokenIsReachable) {
  TempDir dir;
  const SynthTokenizerFiles files = make_synthetic_tokenizer(5000);
  std::ofstream(dir.path() / "tokenizer.json") << files.tokenizer_json;
  std::ofstream(dir.path() / "tokenizer_config.json") << files.tokenizer_config_json;
  const Tokenizer tok = Tokenizer::from_dir(dir.path());
  ASSERT_EQ(tok.vocab_size(), 5000);
  for (int32_t id = static_cast<int32_t>(kSynthMinVocab); id < 5000; ++id) {
    const std::string text = tok.decode(std::vector<int32_t>{id});
    EXPECT_EQ(tok.encode(text), std::vector<int32_t>{id}) << "'" << text << "'";
  }
}

// Loads the tiny model (vocab 512) in dir and checks its logits for a prompt.
void expect_engine_runs(const fs::path& dir) {
  const auto model = Model::load(dir, test::with_threads(1));
  const std::vector<int32_t> ids{1, 40, 300, 7, 511};
  const std::vector<float> logits = model->logits(ids, 1, 5);
  ASSERT_EQ(logits.size(), 5u * 512);
  double sq = 0;
  for (float x : logits) {
    ASSERT_TRUE(std::isfinite(x));
    sq += static_cast<double>(x) * x;
  }
  // The recipe keeps logits O(1) (fixtures README: std ~ 1); not collapsed.
  const double rms = std::sqrt(sq / static_cast<double>(logits.size()));
  EXPECT_GT(rms, 0.1);
  EXPECT_LT(rms, 10.0);
}

// The point of synth: the engine runs what it writes.
TEST(Synth, EngineRunsTheSyntheticModel) {
  for (const char* arch : {"LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM", "Qwen3ForCausalLM"}) {
    SCOPED_TRACE(arch);
    TempDir dir;
    SynthSpec spec = tiny(DType::BF16);
    spec.architecture = arch;
    spec.tie_word_embeddings = std::string(arch) == "Qwen2ForCausalLM";
    write_synthetic_checkpoint(spec, dir.path());
    expect_engine_runs(dir.path());
  }
}

// A mixture of experts of each family holds exactly the tensors its
// description declares for the config.json written beside them, says its
// experts in the family's own keys, draws router and expert matrices by the
// 2-D recipe, and runs. The Qwen models also get dense layers (a sparse step
// of 2, an mlp_only layer), which their configs can say and Mixtral's cannot;
// layer 1 is sparse in each.
TEST(Synth, MoeCheckpointOfEachFamilyHoldsItsDescriptionsTensorsAndRuns) {
  for (const char* arch : {"MixtralForCausalLM", "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM"}) {
    SCOPED_TRACE(arch);
    const bool mixtral = std::string(arch) == "MixtralForCausalLM";
    TempDir dir;
    SynthSpec spec = tiny_moe(arch);
    spec.num_layers = 3;
    if (std::string(arch) == "Qwen2MoeForCausalLM") {
      spec.decoder_sparse_step = 2;  // layer 1 sparse, layers 0 and 2 dense
      spec.norm_topk_prob = false;   // as Qwen1.5-MoE
    } else if (!mixtral) {
      spec.mlp_only_layers = {2};
    }
    write_synthetic_checkpoint(spec, dir.path());

    const ModelConfig c = ModelConfig::from_file(dir.path() / "config.json");
    EXPECT_EQ(c.architecture, arch);
    EXPECT_EQ(c.num_experts, 4);
    EXPECT_EQ(c.num_experts_per_tok, 2);
    EXPECT_EQ(c.moe_intermediate_size, mixtral ? 176 : 48);
    EXPECT_EQ(c.shared_expert_intermediate_size, std::string(arch) == "Qwen2MoeForCausalLM" ? 96 : 0);
    EXPECT_EQ(c.norm_topk_prob, spec.norm_topk_prob);
    std::vector<bool> sparse;
    for (int64_t i = 0; i < c.num_layers; ++i) sparse.push_back(c.is_sparse_layer(i));
    EXPECT_EQ(sparse, mixtral ? (std::vector<bool>{true, true, true})
                              : std::string(arch) == "Qwen2MoeForCausalLM" ? (std::vector<bool>{false, true, false})
                                                                           : (std::vector<bool>{true, true, false}));
    const auto config = test::read_json(dir.path() / "config.json");
    EXPECT_EQ(config.contains("num_local_experts"), mixtral) << "Mixtral's name for the expert count";
    EXPECT_EQ(config.contains("num_experts"), !mixtral) << "Qwen-MoE's name for the expert count";

    const Checkpoint ckpt = Checkpoint::open(dir.path());
    std::map<std::string, std::vector<int64_t>> declared, written;
    for (const StoredTensor& t : checkpoint_tensors(describe(c))) declared[t.name] = t.shape;
    for (const TensorInfo& t : ckpt.tensors()) {
      written[t.name] = t.shape;
      EXPECT_EQ(t.dtype, DType::BF16) << t.name;
    }
    EXPECT_EQ(written, declared);
    // One expert and one router spelled out, in case a description lost them.
    const std::string moe = mixtral ? "model.layers.1.block_sparse_moe." : "model.layers.1.mlp.";
    const std::string down = mixtral ? "experts.3.w2.weight" : "experts.3.down_proj.weight";
    const int64_t width = mixtral ? 176 : 48;
    EXPECT_EQ(written[moe + "gate.weight"], (std::vector<int64_t>{4, 64}));
    EXPECT_EQ(written[moe + down], (std::vector<int64_t>{64, width}));
    expect_recipe(ckpt, {moe + "gate.weight", 0, 1 / 8.0});
    expect_recipe(ckpt, {moe + down, 0, 1 / std::sqrt(static_cast<double>(width))});
    if (!mixtral) {
      // A dense layer's MLP is intermediate_size wide.
      const int64_t dense = std::string(arch) == "Qwen2MoeForCausalLM" ? 0 : 2;
      EXPECT_EQ(written["model.layers." + std::to_string(dense) + ".mlp.down_proj.weight"],
                (std::vector<int64_t>{64, 176}));
    }

    expect_engine_runs(dir.path());
  }
}

// What synth writes in config.json has every key transformers wrote in the
// fixtures' configs of the same family (their config classes' to_json), so
// HF reads the same model from it.
TEST(Synth, ConfigHasTheKeysTransformersWrites) {
  STRATA_REQUIRE_FIXTURES();
  const std::vector<std::pair<std::string, SynthSpec>> cases{
      {"llama-tiny-random", tiny(DType::F32)},
      {"qwen2-tiny-random", [] { SynthSpec s = tiny(DType::F32); s.architecture = "Qwen2ForCausalLM"; return s; }()},
      {"qwen3-tiny-random", [] { SynthSpec s = tiny(DType::F32); s.architecture = "Qwen3ForCausalLM"; return s; }()},
      {"mixtral-tiny-random", tiny_moe("MixtralForCausalLM", DType::F32)},
      {"qwen2moe-tiny-random", tiny_moe("Qwen2MoeForCausalLM", DType::F32)},
      {"qwen3moe-tiny-random", tiny_moe("Qwen3MoeForCausalLM", DType::F32)}};
  for (const auto& [fixture, spec] : cases) {
    SCOPED_TRACE(fixture);
    TempDir dir;
    write_synthetic_checkpoint(spec, dir.path());
    const auto ours = test::read_json(dir.path() / "config.json");
    const auto theirs = test::read_json(test::fixtures_dir() / "models" / fixture / "config.json");
    for (const auto& [key, value] : theirs.items()) {
      if (key == "transformers_version") continue;
      EXPECT_TRUE(ours.contains(key)) << key;
    }
    EXPECT_EQ(ours["model_type"], theirs["model_type"]);
  }
}

// The command line: a missing shape is a clear error, and flags override a preset.
TEST(Synth, CommandLineNeedsAShapeAndAppliesOverrides) {
  TempDir dir;
  const auto run = [](const std::string& args, std::string& output) {
    const std::string cmd = test::cli_path().string() + " synth " + args + " 2>&1";
    FILE* pipe = ::popen(cmd.c_str(), "r");
    if (!pipe) return -1;
    std::array<char, 512> buffer;
    while (size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
    const int status = ::pclose(pipe);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  std::string out;
  EXPECT_EQ(run("-o " + (dir.path() / "a").string(), out), 1);
  EXPECT_NE(out.find("--like"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir.path() / "a"));

  out.clear();
  const fs::path b = dir.path() / "b";
  EXPECT_EQ(run("--like tiny --layers 3 --arch qwen2 --tie --dtype f16 --vocab 300 --seed 5 -o " + b.string(), out), 0)
      << out;
  const ModelConfig c = ModelConfig::from_file(b / "config.json");
  EXPECT_EQ(c.num_layers, 3);
  EXPECT_EQ(c.hidden_size, 64);  // from the preset
  EXPECT_EQ(c.vocab_size, 300);
  EXPECT_EQ(c.architecture, "Qwen2ForCausalLM");
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(Checkpoint::open(b).get("model.norm.weight").dtype, DType::F16);

  out.clear();
  EXPECT_EQ(run("--like tiny -o " + b.string(), out), 1) << "non-empty directory";
  EXPECT_NE(out.find("not empty"), std::string::npos) << out;

  out.clear();
  EXPECT_EQ(run("--like tiny --experts 4 -o " + (dir.path() / "c").string(), out), 1) << "experts in a dense Llama";
  EXPECT_NE(out.find("has no experts"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(run("--arch mixtral --hidden 64 --layers 2 --heads 4 --intermediate 96 --vocab 300 -o " +
                    (dir.path() / "c").string(),
                out),
            1)
      << "a Mixtral without experts";
  EXPECT_NE(out.find("--experts"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir.path() / "c"));
}

// `--like qwen3-30b-a3b --layers 2`, narrowed so the test writes megabytes
// rather than the 3.7 GB of the real width: the preset's experts, heads and
// settings survive the overrides, and strata plans and inspects the result.
TEST(Synth, CommandLineWritesALoadableMoePreset) {
  TempDir dir;
  const fs::path out = dir.path() / "qwen3moe";
  const test::CliResult synth = test::run_cli("synth --like qwen3-30b-a3b --layers 2 --hidden 64 --moe-intermediate 32 "
                                              "--vocab 300 -o " + out.string());
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  EXPECT_NE(synth.out.find("Qwen3MoeForCausalLM"), std::string::npos) << synth.out;

  const ModelConfig c = ModelConfig::from_file(out / "config.json");
  EXPECT_EQ(c.architecture, "Qwen3MoeForCausalLM");
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.moe_intermediate_size, 32);
  EXPECT_EQ(c.num_experts, 128);  // the rest from the preset
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.decoder_sparse_step, 1);
  EXPECT_TRUE(c.mlp_only_layers.empty());
  EXPECT_EQ(c.intermediate_size, 6144);
  EXPECT_EQ(c.num_heads, 32);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.max_position_embeddings, 40960);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.norm_eps, 1e-6);
  EXPECT_FALSE(c.tie_word_embeddings);

  const test::CliResult inspect = test::run_cli("inspect -m " + out.string());
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_NE(inspect.out.find("model.layers.1.mlp.experts.127.down_proj.weight"), std::string::npos);
  EXPECT_NE(inspect.out.find("experts        128 per sparse layer (2 of 2 layers), top-8 renormalized, width 32"),
            std::string::npos)
      << inspect.out;
  const test::CliResult map = test::run_cli("map -m " + out.string() + " --json");
  ASSERT_EQ(map.exit_code, 0) << map.err;
  EXPECT_FALSE(nlohmann::json::parse(map.out).empty()) << map.out;
}

}  // namespace
}  // namespace strata
