// The module tree the planner works on: a torch nn.Module hierarchy reduced to
// what Accelerate's planning functions look at (names, class names, tensor
// shapes and dtypes, registration order). Pure data, no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace strata::plan {

struct TensorSpec {
  std::string name;  // attribute name inside its module, not the full path
  std::vector<int64_t> shape;
  std::string dtype;  // torch spelling without "torch.": "float32", "bfloat16", "bool", ...
  bool is_buffer = false;
  bool persistent = true;  // buffers only; non-persistent buffers still count in sizes
  // Bytes as held when its dtype does not say (a quantized matrix:
  // quant/quant_layout.h); no dtype override changes them. < 0: numel x dtype.
  double quantized_bytes = -1;

  double numel() const;
};

// One nn.Module. Vectors keep registration order because Accelerate's queue and
// torch's named_parameters()/named_buffers() follow it.
struct ModuleNode {
  std::string name;  // attribute name in the parent ("" for the root)
  std::string cls;   // __class__.__name__, the only thing no_split matching sees
  std::vector<TensorSpec> params, buffers;
  std::vector<ModuleNode> children;
};

// Groups of full parameter names that are one tensor object, as
// accelerate.utils.find_tied_parameters reports them.
using TiedGroups = std::vector<std::vector<std::string>>;

// The root module plus which of its parameters share storage.
struct ModuleTree {
  ModuleNode root;
  TiedGroups tied;
};

// Maps each tied parameter's full name to its group index, so code can tell
// "the same tensor object" apart the way torch's duplicate removal does.
using TiedIndex = std::unordered_map<std::string, int>;
TiedIndex index_tied_groups(const TiedGroups& tied);

// Joins a module path and a child name the way torch builds dotted names.
inline std::string join_name(std::string_view prefix, std::string_view name) {
  if (prefix.empty()) return std::string(name);
  std::string out(prefix);
  out += '.';
  out += name;
  return out;
}

// Parses the fixture / interchange format:
// {"name", "class", "params": {p: {"shape", "dtype"}}, "buffers": {b: {"shape", "dtype", "persistent"}},
//  "children": [node...]}. Key order is registration order, so this parser keeps it.
// Throws strata::Error on malformed input. Parsing text is not I/O: callers read files.
ModuleNode parse_module_tree_json(std::string_view json_text);

}  // namespace strata::plan
