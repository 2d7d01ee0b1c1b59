// The table of architectures, and what is derived from a description: the
// blocks, the planner's module tree, the no-split classes.
#include "models/architecture.h"

#include <algorithm>
#include <functional>
#include <unordered_map>

#include "models/decoder.h"
#include "models/families.h"
#include "models/module_tree.h"
#include "strata/error.h"

namespace strata {

const std::vector<Architecture>& architectures() {
  static const std::vector<Architecture> table{
      {"LlamaForCausalLM", describe_llama},   {"MistralForCausalLM", describe_llama},
      {"Qwen2ForCausalLM", describe_llama},   {"Qwen3ForCausalLM", describe_qwen3},
      {"GemmaForCausalLM", describe_gemma},   {"Gemma2ForCausalLM", describe_gemma2},
      {"Phi3ForCausalLM", describe_phi3},     {"GPT2LMHeadModel", describe_gpt2},
      {"MixtralForCausalLM", describe_mixtral}, {"Qwen2MoeForCausalLM", describe_qwen2_moe},
      {"Qwen3MoeForCausalLM", describe_qwen3_moe},
  };
  return table;
}

const Architecture& architecture_of(const ModelConfig& config) {
  std::string known;
  for (const Architecture& a : architectures()) {
    if (a.name == config.architecture) return a;
    known += (known.empty() ? "" : ", ") + std::string(a.name);
  }
  throw Error("unsupported architecture '" + config.architecture + "'", "", "", "strata runs " + known);
}

Description describe(const ModelConfig& config) { return architecture_of(config).describe(config); }

namespace {

// A parameter as the model reads it: a Conv1D weight transposed.
WeightSpec weight_spec(const ModuleDecl& part, std::string name, const TensorDecl& t) {
  const bool transposed = part.conv1d && t.shape.size() == 2;
  return {std::move(name), transposed ? std::vector<int64_t>{t.shape[1], t.shape[0]} : t.shape, transposed};
}

bool is_block(Role role) {
  return role == Role::embedding || role == Role::position_embedding || role == Role::decoder_layer ||
         role == Role::final_norm || role == Role::head;
}

// A tied parameter is read under the name of its group's last member, the
// one the checkpoint keeps (transformers drops lm_head.weight on save).
std::unordered_map<std::string, std::string> stored_names(const plan::TiedGroups& tied) {
  std::unordered_map<std::string, std::string> stored_as;
  for (const auto& group : tied)
    for (const std::string& name : group) stored_as[name] = group.back();
  return stored_as;
}

}  // namespace

std::vector<BlockSpec> blocks_of(const Description& d) {
  const std::unordered_map<std::string, std::string> stored_as = stored_names(d.tied);
  std::vector<BlockSpec> blocks;
  int64_t layers = 0;
  walk(d.root, "", [&](const ModuleDecl& m, const std::string& path) {
    if (!is_block(m.role)) return;
    BlockSpec block{path, m.role, {}, m.role == Role::decoder_layer ? layers++ : -1};
    bool tied = false;
    // Every parameter under the block but a routed expert's (experts_of's).
    std::function<void(const ModuleDecl&, const std::string&)> collect = [&](const ModuleDecl& part,
                                                                            const std::string& part_path) {
      if (part.role == Role::expert) return;
      for (const TensorDecl& t : part.params) {
        std::string name = plan::join_name(part_path, t.name);
        if (auto it = stored_as.find(name); it != stored_as.end()) {
          tied = true;
          name = it->second;
        }
        block.weights.push_back(weight_spec(part, std::move(name), t));
      }
      for (const ModuleDecl& child : part.children) collect(child, plan::join_name(part_path, child.name));
    };
    collect(m, path);
    // An embedding read a few rows per token runs where its table lies when
    // offloaded; a tied one is also the head's matrix and goes where it runs.
    block.lookup = (m.role == Role::embedding && !tied) || m.role == Role::position_embedding;
    blocks.push_back(std::move(block));
  });
  return blocks;
}

std::vector<ExpertSpec> experts_of(const Description& d) {
  std::vector<ExpertSpec> experts;
  int64_t layer = -1;
  walk(d.root, "", [&](const ModuleDecl& m, const std::string& path) {
    if (m.role == Role::decoder_layer) ++layer;
    if (m.role != Role::expert) return;
    ExpertSpec e;
    e.module = path;
    e.layer = layer;
    e.expert = std::stoll(m.name);  // its index in the experts ModuleList
    for (const ModuleDecl& part : m.children) {
      if (part.params.empty()) continue;
      const WeightSpec w = weight_spec(part, plan::join_name(plan::join_name(path, part.name), part.params[0].name),
                                       part.params[0]);
      if (part.role == Role::gate) e.gate = w;
      else if (part.role == Role::up) e.up = w;
      else if (part.role == Role::down) e.down = w;
      else throw Error("internal: expert " + path + " has a part that is no gate, up or down");
    }
    if (e.gate.name.empty() || e.up.name.empty() || e.down.name.empty() || m.children.size() > 4)
      throw Error("internal: expert " + path + " is not a gated MLP of three matrices");
    experts.push_back(std::move(e));
  });
  return experts;
}

std::vector<StoredTensor> checkpoint_tensors(const Description& d) {
  const std::unordered_map<std::string, std::string> stored_as = stored_names(d.tied);
  std::vector<StoredTensor> out;
  walk(d.root, "", [&](const ModuleDecl& m, const std::string& path) {
    for (const TensorDecl& t : m.params) {
      std::string name = plan::join_name(path, t.name);
      if (auto it = stored_as.find(name); it != stored_as.end() && it->second != name) continue;
      out.push_back({std::move(name), t.shape});
    }
  });
  return out;
}

std::string layer_list_path(const Description& d) {
  std::string found;
  walk(d.root, "", [&](const ModuleDecl& m, const std::string& path) {
    for (const ModuleDecl& c : m.children)
      if (c.role == Role::decoder_layer && found.empty()) found = path;
  });
  return found;
}

void check_layer_count(const ModelConfig& config, const Checkpoint& checkpoint) {
  ModelConfig one_layer = config;
  one_layer.num_layers = 1;
  const std::string prefix = layer_list_path(describe(one_layer)) + ".";
  int64_t held = 0;  // one past the highest layer index the checkpoint names
  for (const TensorInfo& t : checkpoint.tensors()) {
    if (t.name.compare(0, prefix.size(), prefix) != 0) continue;
    const size_t end = t.name.find('.', prefix.size());
    const std::string index = t.name.substr(prefix.size(), end == std::string::npos ? end : end - prefix.size());
    if (!index.empty() && index.size() < 10 && index.find_first_not_of("0123456789") == std::string::npos)
      held = std::max<int64_t>(held, std::stoll(index) + 1);
  }
  if (held < config.num_layers)
    throw Error("config.json asks for " + std::to_string(config.num_layers) + " decoder layers, but the checkpoint holds " +
                    std::to_string(held) + " (" + prefix + "*)",
                checkpoint.dir().string(), "", "config.json and the weights disagree");
}

std::unordered_set<std::string> kept_unquantized(const ModelConfig& config) {
  std::unordered_set<std::string> kept;
  walk(describe(config).root, "", [&](const ModuleDecl& m, const std::string& path) {
    const bool keep = m.role == Role::embedding || m.role == Role::position_embedding || m.role == Role::head ||
                      m.role == Role::router || m.role == Role::shared_expert_gate;
    if (keep)
      for (const TensorDecl& p : m.params) kept.insert(plan::join_name(path, p.name));
  });
  return kept;
}

std::vector<BlockSpec> model_blocks(const ModelConfig& config) { return blocks_of(describe(config)); }
std::vector<ExpertSpec> model_experts(const ModelConfig& config) { return experts_of(describe(config)); }

plan::ModuleTree module_tree_for(const ModelConfig& config,
                                 const std::function<std::string(const std::string& tensor_name)>& torch_dtype_of,
                                 const QuantizedOf& quantized_of) {
  const Description d = describe(config);
  // tie_weights() makes the head's weight the embedding's Parameter: one
  // tensor registered at both places, with the dtype of the one stored.
  const std::unordered_map<std::string, std::string> stored_as = stored_names(d.tied);
  const auto dtype_of = [&](const std::string& name) {
    const auto it = stored_as.find(name);
    return torch_dtype_of(it == stored_as.end() ? name : it->second);
  };
  // Tables built at construction take the dtype the model is built in,
  // which is the embedding's.
  std::string embedding_name;
  for (const BlockSpec& b : blocks_of(d))
    if (b.role == Role::embedding) embedding_name = b.weights.front().name;
  return plan::ModuleTree{to_plan_node(d.root, "", dtype_of, torch_dtype_of(embedding_name), quantized_of), d.tied};
}

std::vector<std::string> no_split_classes_for(const ModelConfig& config) { return {describe(config).no_split}; }

size_t workspace_floats(const ModelConfig& config, const StepLimits& limits) {
  return decoder_workspace_floats(config, limits);
}

std::unique_ptr<CausalLM> create_model(const ModelConfig& config, std::vector<BlockSpec> blocks,
                                       WeightSource& weights, uint64_t expert_bytes) {
  return create_decoder(config, describe(config), std::move(blocks), weights, expert_bytes);
}

}  // namespace strata
