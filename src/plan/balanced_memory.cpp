#include "plan/balanced_memory.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "strata/error.h"

namespace strata::plan {
namespace {

// The class name getattr() would reach by walking `path`; a tensor (or an
// unknown name) has no module class, so it never matches no_split.
const ModuleNode* find_module(const ModuleNode& root, const std::string& path) {
  const ModuleNode* node = &root;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    auto it = std::find_if(node->children.begin(), node->children.end(),
                           [&](const ModuleNode& c) { return c.name == part; });
    if (it == node->children.end()) return nullptr;
    node = &*it;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return node;
}

// S in the README: the size of the first module of each no-split class met while
// scanning the sizes dict in insertion order; the largest of those.
double first_no_split_block_size(const ModuleTree& tree, const ModuleSizes& sizes,
                                 const std::vector<std::string>& no_split) {
  if (no_split.empty()) return 0;
  const std::set<std::string> wanted(no_split.begin(), no_split.end());
  std::unordered_map<std::string, double> found;
  for (const auto& [name, size] : sizes.entries()) {
    if (name.empty()) continue;
    const ModuleNode* m = find_module(tree.root, name);
    if (m != nullptr && wanted.count(m->cls) && !found.count(m->cls)) found.emplace(m->cls, size);
    if (found.size() == wanted.size()) break;
  }
  double best = 0;
  bool any = false;
  for (const auto& [cls, size] : found) {
    best = any ? std::max(best, size) : size;
    any = true;
  }
  return best;
}

}  // namespace

std::vector<std::string> get_module_leaves(const std::vector<std::pair<std::string, double>>& sizes) {
  std::unordered_set<std::string> parents;
  for (const auto& [name, size] : sizes) {
    const size_t dot = name.rfind('.');
    if (name.empty() || dot == std::string::npos) continue;
    parents.insert(name.substr(0, dot));
  }
  std::vector<std::string> leaves;
  for (const auto& [name, size] : sizes)
    if (!name.empty() && !parents.count(name)) leaves.push_back(name);
  return leaves;
}

MaxMemory get_balanced_memory(const ModuleTree& tree, const MaxMemory& max_memory_in,
                              const std::vector<std::string>& no_split, const SizeOptions& size_options,
                              bool low_zero) {
  MaxMemory mm = normalize_max_memory(max_memory_in);
  for (const auto& [d, b] : mm)
    // accelerate 0.33 calls torch.device("disk") here, which raises.
    if (d.kind == Device::disk)
      throw Error("balanced strategies do not accept a 'disk' budget", {}, {},
                  "accelerate 0.33 raises on it too; drop the disk key");
  auto budget = [&](int ordinal) -> double& {
    for (auto& [d, b] : mm)
      if (d.is_gpu() && d.index == ordinal) return b;
    throw Error("balanced_low_0 needs a budget for GPU " + std::to_string(ordinal), {}, {},
                "accelerate indexes GPUs 0..n-1 here");
  };

  std::vector<int> gpus;  // ordinals with a budget above 0, ascending
  for (const auto& [d, b] : mm)
    if (d.is_gpu() && b > 0) gpus.push_back(d.index);
  const int num_devices = static_cast<int>(gpus.size());
  if (num_devices == 0) return mm;
  // low_zero makes no sense on one GPU. (The 90 % rule applies only when no
  // max_memory is given, which never happens here.)
  if (num_devices == 1) low_zero = false;

  const ModuleSizes sizes = compute_module_sizes(tree, size_options);
  const double total = sizes.at("");
  double per_gpu = std::floor(total / (low_zero ? num_devices - 1 : num_devices));  // Python //

  // Budgets of exactly total / n leave the last layers offloaded, so Accelerate
  // adds the larger of one no-split block and the mean leaf-module size, x1.25.
  const double block = first_no_split_block_size(tree, sizes, no_split);
  // Leaves of the sizes dict are tensors; dropping them leaves modules, whose
  // leaves are the "final modules".
  const auto tensor_leaves = get_module_leaves(sizes.entries());
  const std::unordered_set<std::string> drop(tensor_leaves.begin(), tensor_leaves.end());
  std::vector<std::pair<std::string, double>> modules;
  for (const auto& e : sizes.entries())
    if (!drop.count(e.first)) modules.push_back(e);
  const auto leaves = get_module_leaves(modules);
  const std::unordered_set<std::string> leaf_set(leaves.begin(), leaves.end());
  double leaf_sum = 0;
  for (const auto& [name, size] : modules)
    if (leaf_set.count(name)) leaf_sum += size;
  const double mean_leaves = std::trunc(leaf_sum / std::max<double>(static_cast<double>(leaves.size()), 1.0));
  per_gpu += std::trunc(1.25 * std::max(block, mean_leaves));

  // Every GPU but the last is capped; the last keeps its budget in case the margin is short.
  for (size_t i = 0; i + 1 < gpus.size(); ++i) {
    double& b = budget(gpus[i]);
    b = std::min(low_zero && gpus[i] == 0 ? budget(0) : per_gpu, b);
  }
  if (low_zero) {
    double others = 0;
    for (int i = 1; i < num_devices; ++i) others += budget(i);
    budget(0) = std::min(std::max(0.0, total - others), budget(0));
  }
  return mm;
}

}  // namespace strata::plan
