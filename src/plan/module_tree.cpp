#include "plan/module_tree.h"

#include <nlohmann/json.hpp>

#include "strata/error.h"

namespace strata::plan {
namespace {

using Json = nlohmann::ordered_json;

std::vector<int64_t> parse_shape(const Json& spec, const std::string& where) {
  if (!spec.contains("shape") || !spec["shape"].is_array())
    throw Error("module tree: tensor has no shape array", {}, where);
  std::vector<int64_t> shape;
  for (const auto& d : spec["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0)
      throw Error("module tree: shape entries must be non-negative integers", {}, where);
    shape.push_back(d.get<int64_t>());
  }
  return shape;
}

TensorSpec parse_tensor(const std::string& name, const Json& spec, bool is_buffer, const std::string& where) {
  if (!spec.is_object()) throw Error("module tree: tensor entry must be an object", {}, where);
  TensorSpec t;
  t.name = name;
  t.shape = parse_shape(spec, where);
  if (!spec.contains("dtype") || !spec["dtype"].is_string())
    throw Error("module tree: tensor has no dtype string", {}, where);
  t.dtype = spec["dtype"].get<std::string>();
  t.is_buffer = is_buffer;
  if (is_buffer && spec.contains("persistent")) t.persistent = spec["persistent"].get<bool>();
  return t;
}

ModuleNode parse_node(const Json& j, const std::string& path, int depth) {
  // A hostile file could nest without end; real models are a few levels deep.
  if (depth > 256) throw Error("module tree: nesting deeper than 256 levels", {}, path);
  if (!j.is_object()) throw Error("module tree: node must be an object", {}, path);
  ModuleNode node;
  node.name = j.value("name", std::string{});
  node.cls = j.value("class", std::string{});
  const std::string full = path;
  if (j.contains("params")) {
    if (!j["params"].is_object()) throw Error("module tree: params must be an object", {}, full);
    for (const auto& [k, v] : j["params"].items()) node.params.push_back(parse_tensor(k, v, false, join_name(full, k)));
  }
  if (j.contains("buffers")) {
    if (!j["buffers"].is_object()) throw Error("module tree: buffers must be an object", {}, full);
    for (const auto& [k, v] : j["buffers"].items()) node.buffers.push_back(parse_tensor(k, v, true, join_name(full, k)));
  }
  if (j.contains("children")) {
    if (!j["children"].is_array()) throw Error("module tree: children must be an array", {}, full);
    for (const auto& c : j["children"]) {
      std::string child_name = c.is_object() ? c.value("name", std::string{}) : std::string{};
      if (child_name.empty()) throw Error("module tree: child module without a name", {}, full);
      node.children.push_back(parse_node(c, join_name(full, child_name), depth + 1));
    }
  }
  return node;
}

}  // namespace

double TensorSpec::numel() const {
  double n = 1;
  for (int64_t d : shape) n *= static_cast<double>(d);
  return n;
}

TiedIndex index_tied_groups(const TiedGroups& tied) {
  TiedIndex index;
  for (size_t g = 0; g < tied.size(); ++g)
    for (const auto& name : tied[g]) index.emplace(name, static_cast<int>(g));
  return index;
}

ModuleNode parse_module_tree_json(std::string_view json_text) {
  Json j;
  try {
    j = Json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("module tree: invalid JSON: ") + e.what());
  }
  return parse_node(j, "", 0);
}

}  // namespace strata::plan
