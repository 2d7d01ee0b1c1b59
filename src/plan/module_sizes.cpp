#include "plan/module_sizes.h"

#include <algorithm>
#include <deque>
#include <unordered_set>

#include "strata/error.h"

namespace strata::plan {

double dtype_byte_size(const std::string& dtype) {
  // accelerate's dtype_byte_size reads the bit count from the dtype's name and
  // special-cases bool as 1/8 byte; a table says the same for the dtypes torch has.
  static const std::unordered_map<std::string, double> kSizes = {
      {"bool", 0.125},     {"uint8", 1},      {"int8", 1},       {"float8_e4m3fn", 1}, {"float8_e5m2", 1},
      {"int16", 2},        {"uint16", 2},     {"float16", 2},    {"bfloat16", 2},      {"half", 2},
      {"int32", 4},        {"uint32", 4},     {"float32", 4},    {"float", 4},         {"int64", 8},
      {"uint64", 8},       {"float64", 8},    {"double", 8},     {"complex64", 8},     {"complex128", 16}};
  std::string key = dtype.rfind("torch.", 0) == 0 ? dtype.substr(6) : dtype;
  auto it = kSizes.find(key);
  if (it == kSizes.end()) throw Error("unknown dtype '" + dtype + "'", {}, {}, "expected a torch dtype name such as float16");
  return it->second;
}

void ModuleSizes::add(const std::string& name, double size) {
  auto [it, inserted] = index_.emplace(name, entries_.size());
  if (inserted) entries_.emplace_back(name, 0.0);
  entries_[it->second].second += size;
}

double ModuleSizes::at(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? 0.0 : entries_[it->second].second;
}

namespace {

// The tied group id of a parameter, or -1 when it is its own object.
int tied_group_of(const TiedIndex& tied, const std::string& full_name) {
  auto it = tied.find(full_name);
  return it == tied.end() ? -1 : it->second;
}

// Pre-order DFS matching nn.Module.named_modules(), collecting one kind of tensor.
void collect(const ModuleNode& node, const std::string& rel, const std::string& full, const TiedIndex& tied,
             bool want_buffers, std::unordered_set<int>& seen_groups, std::vector<NamedTensor>& out) {
  const auto& tensors = want_buffers ? node.buffers : node.params;
  for (const auto& t : tensors) {
    if (!want_buffers) {
      // torch's remove_duplicate memo: a tied parameter is yielded only at its
      // first registration, so later ones never reach the sizes.
      int g = tied_group_of(tied, join_name(full, t.name));
      if (g >= 0 && !seen_groups.insert(g).second) continue;
    }
    out.push_back({join_name(rel, t.name), &t});
  }
  for (const auto& c : node.children)
    collect(c, join_name(rel, c.name), join_name(full, c.name), tied, want_buffers, seen_groups, out);
}

bool is_integer_dtype(const std::string& dtype) {
  // compute_module_sizes: str(dtype).startswith(("torch.uint", "torch.int", "torch.bool")).
  return dtype.rfind("uint", 0) == 0 || dtype.rfind("int", 0) == 0 || dtype.rfind("bool", 0) == 0;
}

// The size compute_module_sizes gives one tensor under the dtype overrides.
double tensor_size(const std::string& name, const TensorSpec& t, const SizeOptions& options) {
  if (t.quantized_bytes >= 0) return t.quantized_bytes;
  if (auto it = options.special_dtypes.find(name); it != options.special_dtypes.end())
    return t.numel() * dtype_byte_size(it->second);
  const double own = dtype_byte_size(t.dtype);
  // Integer and bool tensors are never converted by set_module_tensor_to_device,
  // so Accelerate keeps their own size; floats take the smaller of the two.
  if (!options.dtype || is_integer_dtype(t.dtype)) return t.numel() * own;
  return t.numel() * std::min(dtype_byte_size(*options.dtype), own);
}

void add_to_prefixes(ModuleSizes& sizes, const std::string& name, double size) {
  sizes.add("", size);
  for (size_t pos = name.find('.'); pos != std::string::npos; pos = name.find('.', pos + 1))
    sizes.add(name.substr(0, pos), size);
  sizes.add(name, size);
}

}  // namespace

std::vector<NamedTensor> named_module_tensors(const ModuleNode& module, const std::string& prefix,
                                              const TiedIndex& tied, bool params, bool buffers) {
  std::vector<NamedTensor> out;
  std::unordered_set<int> seen;
  if (params) collect(module, "", prefix, tied, false, seen, out);
  if (buffers) collect(module, "", prefix, tied, true, seen, out);
  return out;
}

std::vector<const TensorSpec*> direct_params(const ModuleNode& module, const std::string& path,
                                             const TiedIndex& tied) {
  std::vector<const TensorSpec*> out;
  std::unordered_set<int> seen;
  for (const auto& t : module.params) {
    int g = tied_group_of(tied, join_name(path, t.name));
    if (g >= 0 && !seen.insert(g).second) continue;
    out.push_back(&t);
  }
  return out;
}

ModuleSizes compute_module_sizes(const ModuleTree& tree, const SizeOptions& options) {
  ModuleSizes sizes;
  const TiedIndex tied = index_tied_groups(tree.tied);
  for (const auto& nt : named_module_tensors(tree.root, "", tied, true, true))
    add_to_prefixes(sizes, nt.name, tensor_size(nt.name, *nt.tensor, options));
  return sizes;
}

double compute_module_total_buffer_size(const ModuleNode& module, const SizeOptions& options) {
  double total = 0;
  for (const auto& nt : named_module_tensors(module, "", {}, false, true))
    total += tensor_size(nt.name, *nt.tensor, options);
  return total;
}

std::vector<QueueItem> initial_queue(const ModuleTree& tree) {
  // infer_auto_device_map: named_parameters(recurse=False) + named_children() +
  // named_buffers(recurse=False) of the root.
  std::vector<QueueItem> items;
  const TiedIndex tied = index_tied_groups(tree.tied);
  for (const TensorSpec* p : direct_params(tree.root, "", tied)) items.push_back({p->name, nullptr});
  for (const auto& c : tree.root.children) items.push_back({c.name, &c});
  for (const auto& b : tree.root.buffers) items.push_back({b.name, nullptr});
  return items;
}

bool is_no_split(const ModuleNode& module, const std::vector<std::string>& no_split) {
  return std::find(no_split.begin(), no_split.end(), module.cls) != no_split.end();
}

template <typename Items>
MaxLayer get_max_layer_size(const Items& items, const ModuleSizes& sizes,
                            const std::vector<std::string>& no_split) {
  MaxLayer best;
  // Depth-first, children replacing their parent in place, as the Python loop
  // prepends named_children() to its work list.
  std::deque<QueueItem> work(items.begin(), items.end());
  while (!work.empty()) {
    QueueItem item = std::move(work.front());
    work.pop_front();
    const ModuleNode* m = item.module;
    if (m == nullptr || m->children.empty() || is_no_split(*m, no_split)) {
      const double size = sizes.at(item.name);
      if (size > best.size) {
        best.size = size;
        best.names = {item.name};
      } else if (size == best.size) {
        best.names.push_back(item.name);
      }
      continue;
    }
    for (auto it = m->children.rbegin(); it != m->children.rend(); ++it)
      work.push_front({join_name(item.name, it->name), &*it});
  }
  return best;
}

template MaxLayer get_max_layer_size(const std::vector<QueueItem>&, const ModuleSizes&,
                                     const std::vector<std::string>&);
template MaxLayer get_max_layer_size(const std::deque<QueueItem>&, const ModuleSizes&,
                                     const std::vector<std::string>&);

}  // namespace strata::plan
