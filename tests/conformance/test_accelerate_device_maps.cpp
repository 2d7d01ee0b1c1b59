// Conformance with Hugging Face Accelerate 0.33.0's device-map planner: every
// case of fixtures/device_maps/accelerate_cases.json and moe_cases.json (see
// their README) is run through src/plan and compared field by field with what
// Accelerate produced.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "plan/balanced_memory.h"
#include "plan/clean_device_map.h"
#include "plan/device_map.h"
#include "plan/module_sizes.h"
#include "plan/module_tree.h"
#include "test_support.h"

namespace strata::plan {
namespace {

using Json = nlohmann::ordered_json;

std::filesystem::path cases_path(const char* file) { return test::fixtures_dir() / "device_maps" / file; }

// The cases of both files, read once, in file order. Empty when the fixtures are absent.
const Json& all_cases() {
  static const Json cases = [] {
    Json all = Json::array();
    for (const char* file : {"accelerate_cases.json", "moe_cases.json"}) {
      if (!std::filesystem::exists(cases_path(file))) continue;
      for (Json& c : Json::parse(test::read_file(cases_path(file)))) all.push_back(std::move(c));
    }
    return all;
  }();
  return cases;
}

std::vector<std::string> case_names() {
  std::vector<std::string> names;
  for (const auto& c : all_cases()) names.push_back(c["name"].get<std::string>());
  return names;
}

const Json& find_case(const std::string& name) {
  for (const auto& c : all_cases())
    if (c["name"] == name) return c;
  throw std::runtime_error("no case " + name);
}

ModuleTree tree_of(const Json& c) {
  ModuleTree tree;
  tree.root = parse_module_tree_json(c["tree"].dump());
  for (const auto& g : c["tied"]) tree.tied.push_back(g.get<std::vector<std::string>>());
  return tree;
}

SizeOptions size_options_of(const Json& c) {
  SizeOptions o;
  if (!c["dtype"].is_null()) o.dtype = c["dtype"].get<std::string>();
  for (const auto& [k, v] : c["special_dtypes"].items()) o.special_dtypes[k] = v.get<std::string>();
  return o;
}

MaxMemory max_memory_of(const Json& j) {
  MaxMemory mm;
  for (const auto& [k, v] : j.items()) mm.emplace_back(parse_device(k), v.get<double>());
  return mm;
}

Device device_of(const Json& v) {
  return v.is_number_integer() ? Device::gpu_(v.get<int>()) : parse_device(v.get<std::string>());
}

DeviceMap map_of(const Json& j) {
  DeviceMap m;
  for (const auto& [k, v] : j.items()) m.emplace_back(k, device_of(v));
  return m;
}

std::string show(const DeviceMap& m) {
  std::ostringstream os;
  os << "{";
  for (const auto& [k, d] : m) os << " '" << k << "': " << d.to_string() << ",";
  os << " }";
  return os.str();
}

// Order-free comparison, listing every differing entry.
void expect_same_map(const DeviceMap& got, const DeviceMap& want, const std::string& what) {
  std::map<std::string, std::string> g, w;
  for (const auto& [k, d] : got) g[k] = d.to_string();
  for (const auto& [k, d] : want) w[k] = d.to_string();
  std::ostringstream diff;
  for (const auto& [k, v] : w) {
    auto it = g.find(k);
    if (it == g.end()) diff << "\n  missing '" << k << "' (want " << v << ")";
    else if (it->second != v) diff << "\n  '" << k << "': got " << it->second << ", want " << v;
  }
  for (const auto& [k, v] : g)
    if (!w.count(k)) diff << "\n  extra '" << k << "': " << v;
  EXPECT_TRUE(diff.str().empty()) << what << " differs:" << diff.str() << "\n got:  " << show(got)
                                  << "\n want: " << show(want);
}

void expect_same_ordered_map(const DeviceMap& got, const DeviceMap& want, const std::string& what) {
  bool same = got.size() == want.size();
  for (size_t i = 0; same && i < got.size(); ++i) same = got[i].first == want[i].first && got[i].second == want[i].second;
  if (same) return;
  std::ostringstream diff;
  for (size_t i = 0; i < std::max(got.size(), want.size()); ++i) {
    std::string g = i < got.size() ? "'" + got[i].first + "': " + got[i].second.to_string() : "(none)";
    std::string w = i < want.size() ? "'" + want[i].first + "': " + want[i].second.to_string() : "(none)";
    if (g != w) diff << "\n  #" << i << ": got " << g << ", want " << w;
  }
  ADD_FAILURE() << what << " differs (in order):" << diff.str();
}

void expect_sizes(const ModuleSizes& got, const Json& want) {
  std::ostringstream diff;
  for (const auto& [k, v] : want.items()) {
    if (!got.contains(k)) diff << "\n  missing '" << k << "' (want " << v.get<double>() << ")";
    else if (got.at(k) != v.get<double>()) diff << "\n  '" << k << "': got " << got.at(k) << ", want " << v.get<double>();
  }
  for (const auto& [k, v] : got.entries())
    if (!want.contains(k)) diff << "\n  extra '" << k << "': " << v;
  EXPECT_TRUE(diff.str().empty()) << "expected_sizes differ:" << diff.str();
}

class AccelerateDeviceMapCase : public ::testing::TestWithParam<std::string> {};

TEST_P(AccelerateDeviceMapCase, MatchesAccelerate) {
  STRATA_REQUIRE_FIXTURES();
  const Json& c = find_case(GetParam());
  SCOPED_TRACE("case " + GetParam() + " (" + c.value("source", std::string{}) + ")");
  const ModuleTree tree = tree_of(c);
  const SizeOptions sizes_opt = size_options_of(c);
  const auto no_split = c["no_split_module_classes"].get<std::vector<std::string>>();

  const ModuleSizes sizes = compute_module_sizes(tree, sizes_opt);
  if (!c["expected_sizes"].is_null()) expect_sizes(sizes, c["expected_sizes"]);
  if (!c["expected_total_buffer_size"].is_null()) {
    EXPECT_EQ(compute_module_total_buffer_size(tree.root, sizes_opt), c["expected_total_buffer_size"].get<double>())
        << "expected_total_buffer_size";
  }
  if (!c["expected_initial_max_layer"].is_null()) {
    const MaxLayer ml = get_max_layer_size(initial_queue(tree), sizes, no_split);
    EXPECT_EQ(ml.size, c["expected_initial_max_layer"]["size"].get<double>()) << "expected_initial_max_layer.size";
    EXPECT_EQ(ml.names, c["expected_initial_max_layer"]["names"].get<std::vector<std::string>>())
        << "expected_initial_max_layer.names";
  }
  if (c["max_memory"].is_null()) return;

  MaxMemory mm = max_memory_of(c["max_memory"]);
  const std::string strategy = c["strategy"].get<std::string>();
  if (strategy == "balanced" || strategy == "balanced_low_0") {
    mm = get_balanced_memory(tree, mm, no_split, sizes_opt, strategy == "balanced_low_0");
    if (!c["expected_balanced_memory"].is_null()) {
      const MaxMemory want = normalize_max_memory(max_memory_of(c["expected_balanced_memory"]));
      ASSERT_EQ(mm.size(), want.size()) << "expected_balanced_memory has another set of devices";
      for (size_t i = 0; i < mm.size(); ++i) {
        EXPECT_EQ(mm[i].first, want[i].first) << "expected_balanced_memory device #" << i;
        EXPECT_EQ(mm[i].second, want[i].second) << "expected_balanced_memory[" << want[i].first.to_string() << "]";
      }
    }
  }

  InferOptions opt;
  opt.no_split_module_classes = no_split;
  opt.sizes = sizes_opt;
  opt.offload_buffers = c["offload_buffers"].get<bool>();
  opt.clean_result = true;
  const InferResult clean = infer_auto_device_map(tree, mm, opt);
  if (!c["expected_device_map"].is_null())
    expect_same_map(clean.device_map, map_of(c["expected_device_map"]), "expected_device_map");
  if (!c["expected_buffer_warning"].is_null()) {
    EXPECT_EQ(clean.buffer_warning, c["expected_buffer_warning"].get<bool>())
        << "expected_buffer_warning (offloaded buffers: " << clean.offloaded_buffer_bytes << " bytes)";
  }
  opt.clean_result = false;
  const InferResult unclean = infer_auto_device_map(tree, mm, opt);
  if (!c["expected_device_map_unclean"].is_null())
    expect_same_ordered_map(unclean.device_map, map_of(c["expected_device_map_unclean"]),
                            "expected_device_map_unclean");
  // clean_device_map of the unclean map is the clean map: the two calls agree.
  expect_same_map(clean_device_map(unclean.device_map), clean.device_map, "clean(unclean) vs clean");
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(AccelerateDeviceMapCase);
INSTANTIATE_TEST_SUITE_P(Accelerate, AccelerateDeviceMapCase, ::testing::ValuesIn(case_names()),
                         test::ParamName());

TEST(AccelerateDeviceMapFixtures, AllCasesPresent) {
  STRATA_REQUIRE_FIXTURES();
  EXPECT_EQ(all_cases().size(), 41u + 6u) << "the README lists 41 cases in accelerate_cases.json and 6 in moe_cases.json";
}

// A Llama-shaped tree with `layers` decoder layers (hidden 4096, bf16).
ModuleTree synthetic_llama(int layers) {
  auto linear = [](const std::string& name, int64_t out, int64_t in) {
    ModuleNode n{name, "Linear", {}, {}, {}};
    n.params.push_back({"weight", {out, in}, "bfloat16", false, true});
    return n;
  };
  auto norm = [](const std::string& name, int64_t h) {
    ModuleNode n{name, "LlamaRMSNorm", {}, {}, {}};
    n.params.push_back({"weight", {h}, "bfloat16", false, true});
    return n;
  };
  const int64_t h = 4096, ffn = 11008, vocab = 32000;
  ModuleNode model{"model", "LlamaModel", {}, {}, {}};
  ModuleNode embed{"embed_tokens", "Embedding", {}, {}, {}};
  embed.params.push_back({"weight", {vocab, h}, "bfloat16", false, true});
  model.children.push_back(embed);
  ModuleNode list{"layers", "ModuleList", {}, {}, {}};
  for (int i = 0; i < layers; ++i) {
    ModuleNode layer{std::to_string(i), "LlamaDecoderLayer", {}, {}, {}};
    ModuleNode attn{"self_attn", "LlamaSdpaAttention", {}, {}, {}};
    for (const char* p : {"q_proj", "k_proj", "v_proj", "o_proj"}) attn.children.push_back(linear(p, h, h));
    ModuleNode mlp{"mlp", "LlamaMLP", {}, {}, {}};
    mlp.children.push_back(linear("gate_proj", ffn, h));
    mlp.children.push_back(linear("up_proj", ffn, h));
    mlp.children.push_back(linear("down_proj", h, ffn));
    mlp.children.push_back(ModuleNode{"act_fn", "SiLU", {}, {}, {}});
    layer.children.push_back(attn);
    layer.children.push_back(mlp);
    layer.children.push_back(norm("input_layernorm", h));
    layer.children.push_back(norm("post_attention_layernorm", h));
    list.children.push_back(std::move(layer));
  }
  model.children.push_back(std::move(list));
  model.children.push_back(norm("norm", h));
  ModuleNode rotary{"rotary_emb", "LlamaRotaryEmbedding", {}, {}, {}};
  rotary.buffers.push_back({"inv_freq", {64}, "float32", true, false});
  model.children.push_back(rotary);
  ModuleTree tree;
  tree.root = ModuleNode{"", "LlamaForCausalLM", {}, {}, {}};
  tree.root.children.push_back(std::move(model));
  tree.root.children.push_back(linear("lm_head", vocab, h));
  return tree;
}

TEST(PlanPerformance, SequentialThousandLayerLlama) {
  const ModuleTree tree = synthetic_llama(1000);
  const double layer_bytes = 2.0 * (4.0 * 4096 * 4096 + 3.0 * 4096 * 11008 + 2 * 4096);
  // Room for ~300 layers on each of two GPUs and ~300 in RAM: the rest goes to disk.
  MaxMemory mm = {{Device::gpu_(0), 300 * layer_bytes}, {Device::gpu_(1), 300 * layer_bytes},
                  {Device::cpu_(), 300 * layer_bytes}};
  InferOptions opt;
  opt.no_split_module_classes = {"LlamaDecoderLayer"};
  const auto start = std::chrono::steady_clock::now();
  const InferResult r = infer_auto_device_map(tree, mm, opt);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("[plan] 1000-layer Llama, sequential: %.1f ms, %zu map entries\n", ms, r.device_map.size());
  ASSERT_FALSE(r.device_map.empty());
  bool has_disk = false;
  for (const auto& [k, d] : r.device_map) has_disk |= d == Device::disk_();
  EXPECT_TRUE(has_disk) << "900 layers of room for 1000 layers must offload some to disk";
}

}  // namespace
}  // namespace strata::plan
