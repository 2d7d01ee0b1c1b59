// Byte sizes of modules and tensors, as accelerate.utils.modeling computes them
// (compute_module_sizes, compute_module_total_buffer_size, get_max_layer_size,
// accelerate 0.33.0). Sizes are doubles because bool tensors count 1/8 byte each
// (dtype_byte_size), so a size can be fractional.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "plan/module_tree.h"

namespace strata::plan {

// accelerate's dtype_byte_size: bits / 8, with bool as 1/8. Throws strata::Error
// for a dtype name it does not know.
double dtype_byte_size(const std::string& dtype);

// The dtype= and special_dtypes= arguments shared by all the sizing functions.
struct SizeOptions {
  std::optional<std::string> dtype;                   // override for floating tensors
  std::map<std::string, std::string> special_dtypes;  // full tensor name -> dtype, wins over all
};

// An insertion-ordered name -> size table, like the defaultdict(int) that
// compute_module_sizes returns. The order matters: get_balanced_memory scans it.
class ModuleSizes {
 public:
  void add(const std::string& name, double size);
  double at(const std::string& name) const;  // 0 when absent, like defaultdict
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const std::vector<std::pair<std::string, double>>& entries() const { return entries_; }

 private:
  std::vector<std::pair<std::string, double>> entries_;
  std::unordered_map<std::string, size_t> index_;
};

// One tensor as torch's named_parameters() / named_buffers() yield it.
struct NamedTensor {
  std::string name;  // full dotted name relative to the walked module
  const TensorSpec* tensor;
};

// named_parameters(recurse=True) then named_buffers(recurse=True): pre-order over
// modules in registration order, each tensor object once (a tied parameter is
// yielded at its first registration only). `prefix` is the walked module's full
// path, used to look tied names up; yielded names are relative to it.
std::vector<NamedTensor> named_module_tensors(const ModuleNode& module, const std::string& prefix,
                                              const TiedIndex& tied, bool params, bool buffers);

// The direct parameters of one module, duplicates (same tied object) removed, as
// named_parameters(recurse=False) gives them.
std::vector<const TensorSpec*> direct_params(const ModuleNode& module, const std::string& path,
                                             const TiedIndex& tied);

// compute_module_sizes: each tensor's size added to every prefix of its name, "" included.
ModuleSizes compute_module_sizes(const ModuleTree& tree, const SizeOptions& options);

// compute_module_total_buffer_size on `module`. Like Accelerate, the names it
// matches special_dtypes against are relative to that module, not full paths.
double compute_module_total_buffer_size(const ModuleNode& module, const SizeOptions& options);

// An entry of Accelerate's modules_to_treat list: a module, or a bare tensor
// (a parameter or buffer queued by itself) when `module` is null.
struct QueueItem {
  std::string name;
  const ModuleNode* module = nullptr;
};

// The root's params, then its children, then its buffers: the initial
// modules_to_treat of infer_auto_device_map.
std::vector<QueueItem> initial_queue(const ModuleTree& tree);

struct MaxLayer {
  double size = 0;
  std::vector<std::string> names;
};

// get_max_layer_size: the largest "layer" (a module without children, a bare
// tensor, or a module whose class is in no_split) in `items`, with every name
// reaching that size. Missing sizes count 0, as the defaultdict does.
template <typename Items>
MaxLayer get_max_layer_size(const Items& items, const ModuleSizes& sizes,
                            const std::vector<std::string>& no_split);

bool is_no_split(const ModuleNode& module, const std::vector<std::string>& no_split);

}  // namespace strata::plan
