// models/module_tree.h builds, from a config alone, the module tree
// transformers 4.44 builds: checked against every Llama-shaped device-map
// fixture (trees made by transformers itself), then planned to Accelerate's
// expected maps, so `strata map --config` gives Accelerate's maps.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "models/module_tree.h"
#include "plan/balanced_memory.h"
#include "plan/device_map.h"
#include "strata/error.h"
#include "strata/model_config.h"
#include "test_support.h"

namespace strata {
namespace {

using Json = nlohmann::ordered_json;
using plan::ModuleNode;
using plan::TensorSpec;

std::string describe(const TensorSpec& t) {
  std::ostringstream s;
  s << t.name << " [";
  for (size_t i = 0; i < t.shape.size(); ++i) s << (i ? "," : "") << t.shape[i];
  s << "] " << t.dtype << (t.is_buffer ? (t.persistent ? " buffer" : " non-persistent buffer") : "");
  return s.str();
}

// Every difference between two trees (names, classes, order, tensors), by path.
void diff_nodes(const ModuleNode& got, const ModuleNode& want, const std::string& path, std::ostringstream& out) {
  if (got.name != want.name) out << "\n  " << path << ": name " << got.name << " vs " << want.name;
  if (got.cls != want.cls) out << "\n  " << path << ": class " << got.cls << " vs " << want.cls;
  const auto tensors = [&](const std::vector<TensorSpec>& g, const std::vector<TensorSpec>& w, const char* what) {
    std::string gs, ws;
    for (const auto& t : g) gs += describe(t) + "; ";
    for (const auto& t : w) ws += describe(t) + "; ";
    if (gs != ws) out << "\n  " << path << ": " << what << " {" << gs << "} vs {" << ws << "}";
  };
  tensors(got.params, want.params, "params");
  tensors(got.buffers, want.buffers, "buffers");
  if (got.children.size() != want.children.size()) {
    out << "\n  " << path << ": " << got.children.size() << " children vs " << want.children.size();
    return;
  }
  for (size_t i = 0; i < got.children.size(); ++i)
    diff_nodes(got.children[i], want.children[i], plan::join_name(path, want.children[i].name), out);
}

std::vector<Json> llama_cases() {
  std::vector<Json> out;
  const auto path = test::fixtures_dir() / "device_maps" / "accelerate_cases.json";
  if (!std::filesystem::exists(path)) return out;
  for (const auto& c : Json::parse(test::read_file(path)))
    if (c["model"].is_object() && c["model"].value("config_class", "") == "LlamaConfig") out.push_back(c);
  return out;
}

// The fixture's config as a config.json; ModelConfig fills what it leaves out
// with LlamaConfig's defaults (rms_norm_eps, rope_theta, biases off).
ModelConfig config_of(const Json& c) {
  Json j = c["model"]["config"];
  j["architectures"] = {"LlamaForCausalLM"};
  return ModelConfig::from_json_text(j.dump(), c["name"].get<std::string>());
}

plan::MaxMemory max_memory_of(const Json& j) {
  plan::MaxMemory mm;
  for (const auto& [k, v] : j.items()) mm.emplace_back(plan::parse_device(k), v.get<double>());
  return mm;
}

TEST(ModuleTreeConfig, MatchesEveryLlamaFixtureAndItsMap) {
  STRATA_REQUIRE_FIXTURES();
  const auto cases = llama_cases();
  ASSERT_EQ(cases.size(), 14u) << "the fixtures README lists 14 Llama-shaped cases";
  for (const Json& c : cases) {
    SCOPED_TRACE("case " + c["name"].get<std::string>());
    const ModelConfig config = config_of(c);
    // The case's dtype is the one the model was built in (float32 when null).
    const std::string dtype = c["dtype"].is_null() ? "float32" : c["dtype"].get<std::string>();
    const plan::ModuleTree tree = module_tree_for(config, [&](const std::string&) { return dtype; });

    std::ostringstream diff;
    diff_nodes(tree.root, plan::parse_module_tree_json(c["tree"].dump()), "", diff);
    EXPECT_TRUE(diff.str().empty()) << "tree differs (got vs fixture):" << diff.str();
    EXPECT_EQ(tree.tied, c["tied"].get<plan::TiedGroups>());

    plan::SizeOptions sizes;
    if (!c["dtype"].is_null()) sizes.dtype = c["dtype"].get<std::string>();
    const auto no_split = no_split_classes_for(config);
    EXPECT_EQ(no_split, c["no_split_module_classes"].get<std::vector<std::string>>());
    plan::MaxMemory mm = max_memory_of(c["max_memory"]);
    const std::string strategy = c["strategy"].get<std::string>();
    if (strategy != "sequential") mm = plan::get_balanced_memory(tree, mm, no_split, sizes, strategy == "balanced_low_0");
    plan::InferOptions options{no_split, sizes, true, c["offload_buffers"].get<bool>()};
    std::map<std::string, std::string> got, want;
    for (const auto& [k, d] : plan::infer_auto_device_map(tree, mm, options).device_map) got[k] = d.to_string();
    for (const auto& [k, v] : c["expected_device_map"].items())
      want[k] = v.is_number() ? std::to_string(v.get<int>()) : v.get<std::string>();
    EXPECT_EQ(got, want) << "expected_device_map";
  }
}

// The MoE cases' trees were built by transformers from their config
// (Mixtral-8x7B and Qwen1.5-MoE-A2.7B shapes, bf16); the maps are checked
// through `strata map --config` in test_cli_map.cpp.
TEST(ModuleTreeConfig, MatchesEveryMoeFixtureTree) {
  STRATA_REQUIRE_FIXTURES();
  const Json cases = Json::parse(test::read_file(test::fixtures_dir() / "device_maps" / "moe_cases.json"));
  const std::map<std::string, std::string> architecture_of{{"MixtralConfig", "MixtralForCausalLM"},
                                                           {"Qwen2MoeConfig", "Qwen2MoeForCausalLM"}};
  ASSERT_EQ(cases.size(), 6u);
  for (const Json& c : cases) {
    SCOPED_TRACE("case " + c["name"].get<std::string>());
    Json j = c["model"]["config"];
    j["architectures"] = {architecture_of.at(c["model"]["config_class"].get<std::string>())};
    const ModelConfig config = ModelConfig::from_json_text(j.dump(), c["name"].get<std::string>());
    const plan::ModuleTree tree = module_tree_for(config, [](const std::string&) { return "bfloat16"; });
    std::ostringstream diff;
    diff_nodes(tree.root, plan::parse_module_tree_json(c["tree"].dump()), "", diff);
    EXPECT_TRUE(diff.str().empty()) << "tree differs (got vs fixture):" << diff.str();
    EXPECT_EQ(no_split_classes_for(config), c["no_split_module_classes"].get<std::vector<std::string>>());
  }
}

ModelConfig small(const std::string& arch) {
  ModelConfig c;
  c.architecture = arch;
  c.hidden_size = 64;
  c.intermediate_size = 160;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 300;
  c.max_position_embeddings = 512;
  c.qkv_bias = arch == "Qwen2ForCausalLM";
  return c;
}

const ModuleNode& child(const ModuleNode& n, const std::string& name) {
  for (const auto& c : n.children)
    if (c.name == name) return c;
  throw std::runtime_error("no child " + name);
}

std::vector<std::string> names(const std::vector<ModuleNode>& nodes) {
  std::vector<std::string> out;
  for (const auto& n : nodes) out.push_back(n.name);
  return out;
}

TEST(ModuleTreeConfig, Qwen2HasPerLayerRopeCachesAndQkvBiases) {
  ModelConfig c = small("Qwen2ForCausalLM");
  c.tie_word_embeddings = true;
  const auto dtype_of = [](const std::string& name) { return name == "model.norm.weight" ? "float32" : "bfloat16"; };
  const plan::ModuleTree tree = module_tree_for(c, dtype_of);
  EXPECT_EQ(tree.root.cls, "Qwen2ForCausalLM");
  const ModuleNode& model = child(tree.root, "model");
  EXPECT_EQ(names(model.children), (std::vector<std::string>{"embed_tokens", "layers", "norm"}))
      << "transformers 4.44's Qwen2Model has no model-level rotary_emb";
  EXPECT_EQ(child(model, "norm").params[0].dtype, "float32") << "dtypes are asked per tensor";
  const ModuleNode& layer = child(child(model, "layers"), "1");
  EXPECT_EQ(layer.cls, "Qwen2DecoderLayer");
  const ModuleNode& attn = child(layer, "self_attn");
  EXPECT_EQ(attn.cls, "Qwen2Attention");
  EXPECT_EQ(names(attn.children), (std::vector<std::string>{"q_proj", "k_proj", "v_proj", "o_proj", "rotary_emb"}));
  EXPECT_EQ(describe(child(attn, "k_proj").params[1]), "bias [32] bfloat16");
  EXPECT_EQ(child(attn, "o_proj").params.size(), 1u) << "Qwen2's o_proj has no bias";
  const ModuleNode& rope = child(attn, "rotary_emb");
  EXPECT_EQ(rope.cls, "Qwen2RotaryEmbedding");
  ASSERT_EQ(rope.buffers.size(), 3u);
  EXPECT_EQ(describe(rope.buffers[0]), "inv_freq [8] float32 non-persistent buffer");
  EXPECT_EQ(describe(rope.buffers[1]), "cos_cached [512,16] bfloat16 non-persistent buffer");
  EXPECT_EQ(describe(rope.buffers[2]), "sin_cached [512,16] bfloat16 non-persistent buffer");
  EXPECT_EQ(child(layer, "mlp").cls, "Qwen2MLP");
  EXPECT_EQ(child(layer, "input_layernorm").cls, "Qwen2RMSNorm");
  EXPECT_EQ(tree.tied, (plan::TiedGroups{{"lm_head.weight", "model.embed_tokens.weight"}}));
  EXPECT_EQ(describe(child(tree.root, "lm_head").params[0]), "weight [300,64] bfloat16");
  EXPECT_EQ(no_split_classes_for(c), std::vector<std::string>{"Qwen2DecoderLayer"});
}

TEST(ModuleTreeConfig, MistralAndLlamaBiasesAndHeadDim) {
  ModelConfig m = small("MistralForCausalLM");
  m.head_dim = 32;  // Mistral-NeMo style: heads x head_dim != hidden
  const plan::ModuleTree mt = module_tree_for(m, [](const std::string&) { return "float16"; });
  const ModuleNode& model = child(mt.root, "model");
  EXPECT_EQ(names(model.children), (std::vector<std::string>{"embed_tokens", "layers", "norm"}));
  const ModuleNode& attn = child(child(child(model, "layers"), "0"), "self_attn");
  EXPECT_EQ(attn.cls, "MistralAttention");
  EXPECT_EQ(describe(child(attn, "q_proj").params[0]), "weight [128,64] float16");
  EXPECT_EQ(describe(child(attn, "o_proj").params[0]), "weight [64,128] float16");
  EXPECT_EQ(child(attn, "rotary_emb").buffers.size(), 1u);
  EXPECT_EQ(describe(child(attn, "rotary_emb").buffers[0]), "inv_freq [16] float32 non-persistent buffer");
  EXPECT_TRUE(mt.tied.empty());
  EXPECT_EQ(no_split_classes_for(m), std::vector<std::string>{"MistralDecoderLayer"});

  ModelConfig l = small("LlamaForCausalLM");
  l.attention_bias = true;
  l.mlp_bias = true;
  const plan::ModuleTree lt = module_tree_for(l, [](const std::string&) { return "float32"; });
  const ModuleNode& layer = child(child(child(lt.root, "model"), "layers"), "0");
  EXPECT_EQ(child(child(layer, "self_attn"), "o_proj").params.size(), 2u) << "attention_bias covers o_proj";
  EXPECT_EQ(describe(child(child(layer, "mlp"), "down_proj").params[1]), "bias [64] float32");
  EXPECT_EQ(names(child(lt.root, "model").children),
            (std::vector<std::string>{"embed_tokens", "layers", "norm", "rotary_emb"}));

  ModelConfig bad = small("FalconForCausalLM");
  EXPECT_THROW(module_tree_for(bad, [](const std::string&) { return "float32"; }), Error);
  EXPECT_THROW(no_split_classes_for(bad), Error);
}

}  // namespace
}  // namespace strata
