// A torch module as an architecture description declares it: the module tree
// transformers builds (names, class names, registration order, parameter
// shapes, buffers), with a role on the modules the forward pass reads.
//
// This tree is the one place a family names its tensors. The planner's module
// tree (plan/module_tree.h), the blocks the runtime places (causal_lm.h), the
// tensors `synth` writes and the weights the forward binds are all derived
// from it (DESIGN.md, "Architecture descriptions").
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "plan/module_tree.h"
#include "quant/quant_layout.h"

namespace strata {

// What a module is to the forward pass. Blocks (the units the runtime places
// and runs hooks around) are the modules with a block role; the others are
// found by role inside their block.
enum class Role {
  none,
  // Blocks, in execution order.
  embedding,           // token embedding table [vocab, hidden]
  position_embedding,  // learned positions [max_positions, hidden] (GPT-2)
  decoder_layer,
  final_norm,
  head,  // [vocab, hidden]
  // Parts of a decoder layer.
  attention_norm,         // before attention
  attention_output_norm,  // on attention's output, before the residual add (Gemma 2)
  mlp_norm,               // before the MLP
  mlp_output_norm,        // on the MLP's output, before the residual add (Gemma 2)
  q, k, v, qkv,           // query/key/value projections, or the three fused (rows q, k, v)
  o,                      // attention output projection
  q_norm, k_norm,         // per-head norms of queries and keys before rope (Qwen3)
  gate, up, gate_up,      // MLP input projections, or gate and up fused (rows gate, up)
  down,                   // MLP output projection
  // Parts of a sparse (mixture-of-experts) layer.
  router,              // [experts, hidden]: one logit per expert
  expert,              // one routed expert: an MLP with gate, up and down
  shared_expert,       // an MLP every token runs (Qwen2-MoE)
  shared_expert_gate,  // [1, hidden]: sigmoid(x . w) scales the shared expert
};

// A parameter or buffer. Parameters take their dtype from the checkpoint;
// buffers name theirs.
struct TensorDecl {
  std::string name;
  std::vector<int64_t> shape;  // as torch holds it
  // Buffers: "float32", "bool", ..., or kModelDtype for tables built in the
  // dtype the model is constructed in (Qwen2's rotary cos/sin caches).
  std::string dtype;
  bool persistent = true;
};
inline constexpr const char* kModelDtype = "model";

struct ModuleDecl {
  std::string name;  // attribute name in the parent
  std::string cls;   // class name, as no_split matching sees it
  Role role = Role::none;
  // GPT-2's Conv1D: the weight is stored [in, out], the transpose of a Linear's.
  bool conv1d = false;
  std::vector<TensorDecl> params, buffers;
  std::vector<ModuleDecl> children;
};

// Builders for the modules every family uses, named as torch names them.
// nn.Linear(in, out): weight [out, in], then bias [out] when present.
ModuleDecl linear(std::string name, int64_t out, int64_t in, bool bias, Role role = Role::none);
// transformers' Conv1D(nf=out, nx=in): weight [in, out], bias [out].
ModuleDecl conv1d(std::string name, int64_t out, int64_t in, Role role = Role::none);
// nn.Embedding(rows, dim): weight [rows, dim].
ModuleDecl embedding(std::string name, int64_t rows, int64_t dim, Role role);
// A norm of class `cls` with weight [dim] (and bias [dim] for LayerNorm).
ModuleDecl norm(std::string name, std::string cls, int64_t dim, bool bias, Role role);
// A module without parameters (activations, dropout, containers).
ModuleDecl plain(std::string name, std::string cls, std::vector<ModuleDecl> children = {});
// A rotary embedding module: inv_freq [head_dim / 2], float32, non-persistent.
ModuleDecl rotary(std::string name, std::string cls, int64_t head_dim);

// The planner's view of the tree: parameter dtypes asked of dtype_of(full
// name), kModelDtype buffers given model_dtype.
using DtypeOf = std::function<std::string(const std::string& tensor_name)>;
// The layout a matrix parameter is held in when the checkpoint stores it
// quantized, else null; an empty function: nothing is quantized.
using QuantizedOf = std::function<const QuantLayout*(const std::string& tensor_name)>;
plan::ModuleNode to_plan_node(const ModuleDecl& module, const std::string& path, const DtypeOf& dtype_of,
                              const std::string& model_dtype, const QuantizedOf& quantized_of = {});

// Calls visit(module, full path) for the module and every descendant, parents first.
void walk(const ModuleDecl& module, const std::string& path,
          const std::function<void(const ModuleDecl&, const std::string&)>& visit);

// Full names of every parameter under `module` (at `path`), in torch's
// named_parameters() order.
std::vector<std::string> parameter_names(const ModuleDecl& module, const std::string& path);

}  // namespace strata
