// The module trees of the families added after Llama, against what
// transformers builds:
// - parameter names and shapes against the fixture checkpoints, which
//   transformers itself wrote (every family, automatically);
// - registration order, class names and buffers against the modeling code
//   of transformers v4.44.0 (v4.51.3 for Qwen3), read at the lines cited.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "format/safetensors.h"
#include "models/architecture.h"
#include "models/module_tree.h"
#include "strata/model_config.h"
#include "test_support.h"

namespace strata {
namespace {

using plan::ModuleNode;

ModelConfig fixture_config(const std::string& name) {
  return ModelConfig::from_file(test::fixtures_dir() / "models" / name / "config.json");
}

plan::ModuleTree tree_of(const ModelConfig& c) {
  return module_tree_for(c, [](const std::string&) { return std::string("float32"); });
}

const ModuleNode& child(const ModuleNode& n, const std::string& name) {
  for (const auto& c : n.children)
    if (c.name == name) return c;
  throw std::runtime_error("no child " + name + " in " + n.name);
}

const ModuleNode& at(const ModuleNode& root, const std::string& path) {
  const ModuleNode* node = &root;
  size_t begin = 0;
  while (begin < path.size()) {
    const size_t dot = path.find('.', begin);
    node = &child(*node, path.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin));
    begin = dot == std::string::npos ? path.size() : dot + 1;
  }
  return *node;
}

std::vector<std::string> children(const ModuleNode& n) {
  std::vector<std::string> out;
  for (const auto& c : n.children) out.push_back(c.name + ":" + c.cls);
  return out;
}

void collect(const ModuleNode& n, const std::string& path, std::map<std::string, std::vector<int64_t>>& out) {
  for (const auto& p : n.params) out[plan::join_name(path, p.name)] = p.shape;
  for (const auto& c : n.children) collect(c, plan::join_name(path, c.name), out);
}

// format/ reads the config of exactly the architectures models/ describes.
TEST(FamilyTree, EveryConfigClassHasADescription) {
  std::vector<std::string> described;
  for (const Architecture& a : architectures()) described.emplace_back(a.name);
  EXPECT_EQ(described, supported_architectures());
}

class FamilyTree : public ::testing::TestWithParam<std::string> {};

// Every parameter the tree declares is a tensor of the same shape in the
// checkpoint transformers saved, and the other way round; a tied head is
// the one parameter the file leaves out.
TEST_P(FamilyTree, ParametersAreTheCheckpointsTensors) {
  STRATA_REQUIRE_FIXTURES();
  const ModelConfig config = fixture_config(GetParam());
  const plan::ModuleTree tree = tree_of(config);
  std::map<std::string, std::vector<int64_t>> declared, stored;
  collect(tree.root, "", declared);
  for (const auto& group : tree.tied)
    for (size_t i = 0; i + 1 < group.size(); ++i) declared.erase(group[i]);
  const Checkpoint checkpoint = Checkpoint::open(test::fixtures_dir() / "models" / GetParam());
  for (const TensorInfo& t : checkpoint.tensors()) stored[t.name] = t.shape;
  EXPECT_EQ(declared, stored);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FamilyTree,
                         ::testing::Values("gpt2-tiny-random", "gemma-tiny-random", "gemma2-tiny-random",
                                           "phi3-tiny-random", "qwen3-tiny-random", "llama-tiny-random",
                                           "qwen2-tiny-random", "mixtral-tiny-random", "qwen2moe-tiny-random",
                                           "qwen3moe-tiny-random"),
                         test::ParamName());

TEST(FamilyTree, Gpt2RegistrationOrderAndMaskBuffers) {
  STRATA_REQUIRE_FIXTURES();
  ModelConfig c = fixture_config("gpt2-tiny-random");
  const plan::ModuleTree tree =
      module_tree_for(c, [](const std::string&) { return std::string("float16"); });
  EXPECT_EQ(children(tree.root), (std::vector<std::string>{"transformer:GPT2Model", "lm_head:Linear"}));
  // modeling_gpt2.py:891-908 (GPT2Model), :584-599 (GPT2Block), :127-162 (GPT2Attention), :564-571 (GPT2MLP).
  EXPECT_EQ(children(at(tree.root, "transformer")),
            (std::vector<std::string>{"wte:Embedding", "wpe:Embedding", "drop:Dropout", "h:ModuleList", "ln_f:LayerNorm"}));
  EXPECT_EQ(children(at(tree.root, "transformer.h.1")),
            (std::vector<std::string>{"ln_1:LayerNorm", "attn:GPT2Attention", "ln_2:LayerNorm", "mlp:GPT2MLP"}));
  const ModuleNode& attn = at(tree.root, "transformer.h.0.attn");
  EXPECT_EQ(children(attn), (std::vector<std::string>{"c_attn:Conv1D", "c_proj:Conv1D", "attn_dropout:Dropout",
                                                      "resid_dropout:Dropout"}));
  ASSERT_EQ(attn.buffers.size(), 2u);
  EXPECT_EQ(attn.buffers[0].name, "bias");
  EXPECT_EQ(attn.buffers[0].dtype, "bool");
  EXPECT_EQ(attn.buffers[0].shape, (std::vector<int64_t>{1, 1, 64, 64}));
  EXPECT_FALSE(attn.buffers[0].persistent);
  EXPECT_EQ(attn.buffers[1].name, "masked_bias");
  EXPECT_EQ(attn.buffers[1].dtype, "float16") << "built in the model's default dtype";
  EXPECT_EQ(at(tree.root, "transformer.h.0.attn.c_attn").params[0].shape, (std::vector<int64_t>{64, 192}))
      << "Conv1D stores [in, out]";
  EXPECT_EQ(children(at(tree.root, "transformer.h.0.mlp")),
            (std::vector<std::string>{"c_fc:Conv1D", "c_proj:Conv1D", "act:NewGELUActivation", "dropout:Dropout"}));
  EXPECT_EQ(tree.tied, (plan::TiedGroups{{"lm_head.weight", "transformer.wte.weight"}}));
  EXPECT_EQ(no_split_classes_for(c), std::vector<std::string>{"GPT2Block"});
}

TEST(FamilyTree, Phi3RegistersOutputBeforeFusedQkvAndItsDropouts) {
  STRATA_REQUIRE_FIXTURES();
  const plan::ModuleTree tree = tree_of(fixture_config("phi3-tiny-random"));
  // modeling_phi3.py:939-960 (Phi3Model), :735-747 (Phi3DecoderLayer), :391-407 (Phi3Attention), :326-341 (Phi3MLP).
  EXPECT_EQ(children(at(tree.root, "model")), (std::vector<std::string>{"embed_tokens:Embedding", "embed_dropout:Dropout",
                                                                        "layers:ModuleList", "norm:Phi3RMSNorm"}));
  EXPECT_EQ(children(at(tree.root, "model.layers.0")),
            (std::vector<std::string>{"self_attn:Phi3Attention", "mlp:Phi3MLP", "input_layernorm:Phi3RMSNorm",
                                      "resid_attn_dropout:Dropout", "resid_mlp_dropout:Dropout",
                                      "post_attention_layernorm:Phi3RMSNorm"}));
  EXPECT_EQ(children(at(tree.root, "model.layers.0.self_attn")),
            (std::vector<std::string>{"o_proj:Linear", "qkv_proj:Linear", "rotary_emb:Phi3RotaryEmbedding"}));
  EXPECT_EQ(children(at(tree.root, "model.layers.0.mlp")),
            (std::vector<std::string>{"gate_up_proj:Linear", "down_proj:Linear", "activation_fn:SiLU"}));
  EXPECT_TRUE(tree.tied.empty());
}

TEST(FamilyTree, GemmaAndGemma2NormsAndRotaryPerAttention) {
  STRATA_REQUIRE_FIXTURES();
  // modeling_gemma.py:765-785, :564-573: no model-level rotary_emb in 4.44.
  const plan::ModuleTree gemma = tree_of(fixture_config("gemma-tiny-random"));
  EXPECT_EQ(children(at(gemma.root, "model")),
            (std::vector<std::string>{"embed_tokens:Embedding", "layers:ModuleList", "norm:GemmaRMSNorm"}));
  EXPECT_EQ(children(at(gemma.root, "model.layers.0.self_attn")),
            (std::vector<std::string>{"q_proj:Linear", "k_proj:Linear", "v_proj:Linear", "o_proj:Linear",
                                      "rotary_emb:GemmaRotaryEmbedding"}));
  EXPECT_EQ(at(gemma.root, "model.layers.0.mlp.act_fn").cls, "PytorchGELUTanh");
  EXPECT_EQ(gemma.tied, (plan::TiedGroups{{"lm_head.weight", "model.embed_tokens.weight"}}))
      << "GemmaConfig ties by default; the fixture's config.json does not say";
  // modeling_gemma2.py:545-560: four norms, in this order.
  const plan::ModuleTree gemma2 = tree_of(fixture_config("gemma2-tiny-random"));
  EXPECT_EQ(children(at(gemma2.root, "model.layers.2")),
            (std::vector<std::string>{"self_attn:Gemma2Attention", "mlp:Gemma2MLP", "input_layernorm:Gemma2RMSNorm",
                                      "post_attention_layernorm:Gemma2RMSNorm",
                                      "pre_feedforward_layernorm:Gemma2RMSNorm",
                                      "post_feedforward_layernorm:Gemma2RMSNorm"}));
}

TEST(FamilyTree, Qwen3HeadNormsAndModelLevelRotary) {
  STRATA_REQUIRE_FIXTURES();
  const plan::ModuleTree tree = tree_of(fixture_config("qwen3-tiny-random"));
  // transformers 4.51.3 modeling_qwen3.py:467-490 (Qwen3Model), :185-203 (Qwen3Attention).
  EXPECT_EQ(children(at(tree.root, "model")),
            (std::vector<std::string>{"embed_tokens:Embedding", "layers:ModuleList", "norm:Qwen3RMSNorm",
                                      "rotary_emb:Qwen3RotaryEmbedding"}));
  EXPECT_EQ(children(at(tree.root, "model.layers.1.self_attn")),
            (std::vector<std::string>{"q_proj:Linear", "k_proj:Linear", "v_proj:Linear", "o_proj:Linear",
                                      "q_norm:Qwen3RMSNorm", "k_norm:Qwen3RMSNorm"}));
  EXPECT_EQ(at(tree.root, "model.layers.1.self_attn.q_norm").params[0].shape, (std::vector<int64_t>{32}));
  const auto& inv_freq = at(tree.root, "model.rotary_emb").buffers.at(0);
  EXPECT_EQ(inv_freq.shape, (std::vector<int64_t>{16})) << "head_dim 32, not hidden / heads";
}

TEST(FamilyTree, QwenMoeSparseAndDenseLayers) {
  STRATA_REQUIRE_FIXTURES();
  // modeling_qwen2_moe.py (4.44): a layer is sparse unless it is listed in
  // mlp_only_layers or (i + 1) % decoder_sparse_step != 0; a dense layer's
  // Qwen2MoeMLP is intermediate_size wide.
  ModelConfig c = fixture_config("qwen2moe-tiny-random");
  c.num_layers = 4;
  c.decoder_sparse_step = 2;
  c.mlp_only_layers = {3};
  const plan::ModuleTree tree = tree_of(c);
  for (const char* dense : {"model.layers.0.mlp", "model.layers.2.mlp", "model.layers.3.mlp"}) {
    SCOPED_TRACE(dense);
    EXPECT_EQ(at(tree.root, dense).cls, "Qwen2MoeMLP");
    EXPECT_EQ(at(tree.root, std::string(dense) + ".up_proj").params[0].shape, (std::vector<int64_t>{160, 64}));
  }
  EXPECT_EQ(children(at(tree.root, "model.layers.1.mlp")),
            (std::vector<std::string>{"gate:Linear", "experts:ModuleList", "shared_expert:Qwen2MoeMLP",
                                      "shared_expert_gate:Linear"}));
  EXPECT_EQ(at(tree.root, "model.layers.1.mlp.experts.3.down_proj").params[0].shape,
            (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(at(tree.root, "model.layers.1.mlp.shared_expert.gate_proj").params[0].shape,
            (std::vector<int64_t>{96, 64}));

  // modeling_qwen3_moe.py (4.51.3): no shared expert, the rotary table at the model level.
  const plan::ModuleTree qwen3 = tree_of(fixture_config("qwen3moe-tiny-random"));
  EXPECT_EQ(children(at(qwen3.root, "model.layers.0.mlp")),
            (std::vector<std::string>{"gate:Linear", "experts:ModuleList"}));
  EXPECT_EQ(at(qwen3.root, "model.layers.0.mlp.experts.7").cls, "Qwen3MoeMLP");
  EXPECT_EQ(children(at(qwen3.root, "model")),
            (std::vector<std::string>{"embed_tokens:Embedding", "layers:ModuleList", "norm:Qwen3MoeRMSNorm",
                                      "rotary_emb:Qwen3MoeRotaryEmbedding"}));
}

}  // namespace
}  // namespace strata
