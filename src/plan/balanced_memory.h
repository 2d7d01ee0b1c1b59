// accelerate 0.33.0's get_balanced_memory: per-GPU budgets that spread the
// model evenly, fed to infer_auto_device_map for the "balanced" and
// "balanced_low_0" strategies (transformers' device_map="auto" is "balanced").
#pragma once

#include <string>
#include <vector>

#include "plan/device.h"
#include "plan/module_sizes.h"
#include "plan/module_tree.h"

namespace strata::plan {

// Returns the adjusted max_memory, in device order. Throws strata::Error where
// Accelerate raises: a "disk" key, or low_zero budgets missing an ordinal 0..n-1.
MaxMemory get_balanced_memory(const ModuleTree& tree, const MaxMemory& max_memory,
                              const std::vector<std::string>& no_split_module_classes, const SizeOptions& sizes,
                              bool low_zero);

// get_module_leaves: names in `sizes` (but "") that no other name has as its parent.
std::vector<std::string> get_module_leaves(const std::vector<std::pair<std::string, double>>& sizes);

}  // namespace strata::plan
