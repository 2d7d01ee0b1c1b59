#include "models/module_decl.h"

namespace strata {
namespace {

ModuleDecl module(std::string name, std::string cls, Role role) {
  ModuleDecl m;
  m.name = std::move(name);
  m.cls = std::move(cls);
  m.role = role;
  return m;
}

// A parameter: its dtype comes from the checkpoint.
TensorDecl parameter(std::string name, std::vector<int64_t> shape) {
  TensorDecl t;
  t.name = std::move(name);
  t.shape = std::move(shape);
  return t;
}

}  // namespace

ModuleDecl linear(std::string name, int64_t out, int64_t in, bool bias, Role role) {
  ModuleDecl m = module(std::move(name), "Linear", role);
  m.params.push_back(parameter("weight", {out, in}));
  if (bias) m.params.push_back(parameter("bias", {out}));
  return m;
}

ModuleDecl conv1d(std::string name, int64_t out, int64_t in, Role role) {
  ModuleDecl m = module(std::move(name), "Conv1D", role);
  m.conv1d = true;
  m.params.push_back(parameter("weight", {in, out}));
  m.params.push_back(parameter("bias", {out}));
  return m;
}

ModuleDecl embedding(std::string name, int64_t rows, int64_t dim, Role role) {
  ModuleDecl m = module(std::move(name), "Embedding", role);
  m.params.push_back(parameter("weight", {rows, dim}));
  return m;
}

ModuleDecl norm(std::string name, std::string cls, int64_t dim, bool bias, Role role) {
  ModuleDecl m = module(std::move(name), std::move(cls), role);
  m.params.push_back(parameter("weight", {dim}));
  if (bias) m.params.push_back(parameter("bias", {dim}));
  return m;
}

ModuleDecl plain(std::string name, std::string cls, std::vector<ModuleDecl> children) {
  ModuleDecl m = module(std::move(name), std::move(cls), Role::none);
  m.children = std::move(children);
  return m;
}

ModuleDecl rotary(std::string name, std::string cls, int64_t head_dim) {
  ModuleDecl m = module(std::move(name), std::move(cls), Role::none);
  // inv_freq = 1 / base^(arange(0, dim, 2) / dim), computed with .float()
  // whatever the model's dtype; rope scaling keeps the shape.
  m.buffers.push_back({"inv_freq", {head_dim / 2}, "float32", false});
  return m;
}

plan::ModuleNode to_plan_node(const ModuleDecl& module, const std::string& path, const DtypeOf& dtype_of,
                              const std::string& model_dtype, const QuantizedOf& quantized_of) {
  plan::ModuleNode node{module.name, module.cls, {}, {}, {}};
  for (const TensorDecl& p : module.params) {
    const std::string name = plan::join_name(path, p.name);
    plan::TensorSpec t{p.name, p.shape, dtype_of(name), false, true};
    const QuantLayout* layout = quantized_of && p.shape.size() == 2 ? quantized_of(name) : nullptr;
    if (layout) t.quantized_bytes = static_cast<double>(quant_bytes(*layout, p.shape[0], p.shape[1]));
    node.params.push_back(std::move(t));
  }
  for (const TensorDecl& b : module.buffers)
    node.buffers.push_back({b.name, b.shape, b.dtype == kModelDtype ? model_dtype : b.dtype, true, b.persistent});
  for (const ModuleDecl& c : module.children)
    node.children.push_back(to_plan_node(c, plan::join_name(path, c.name), dtype_of, model_dtype, quantized_of));
  return node;
}

void walk(const ModuleDecl& module, const std::string& path,
          const std::function<void(const ModuleDecl&, const std::string&)>& visit) {
  visit(module, path);
  for (const ModuleDecl& c : module.children) walk(c, plan::join_name(path, c.name), visit);
}

std::vector<std::string> parameter_names(const ModuleDecl& module, const std::string& path) {
  std::vector<std::string> names;
  walk(module, path, [&](const ModuleDecl& m, const std::string& p) {
    for (const TensorDecl& t : m.params) names.push_back(plan::join_name(p, t.name));
  });
  return names;
}

}  // namespace strata
