#include "strata/model.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "core/clock.h"
#include "models/architecture.h"
#include "models/causal_lm.h"
#include "plan/max_memory.h"
#include "runtime/model_impl.h"
#include "runtime/plan_request.h"
#include "strata/error.h"

namespace strata {
namespace {

// Every name a device map may use: module paths and tensor names of the tree.
void collect_names(const plan::ModuleNode& node, const std::string& path, std::unordered_set<std::string>& out) {
  out.insert(path);
  for (const auto& t : node.params) out.insert(plan::join_name(path, t.name));
  for (const auto& t : node.buffers) out.insert(plan::join_name(path, t.name));
  for (const auto& c : node.children) collect_names(c, plan::join_name(path, c.name), out);
}

// Runs of numbered siblings on one line: "model.layers.0", ...,
// "model.layers.9" -> "model.layers.0-9", and likewise a layer's experts
// ("model.layers.3.mlp.experts.40-127"): a device's modules on one line.
std::vector<std::string> collapse_runs(const std::vector<std::string>& modules) {
  // ("model.layers.", 7) for "model.layers.7"; index -1 when not numbered.
  const auto split = [](const std::string& m) -> std::pair<std::string, long> {
    const size_t dot = m.rfind('.');
    const std::string last = dot == std::string::npos ? m : m.substr(dot + 1);
    if (last.empty() || last.size() > 9 || last.find_first_not_of("0123456789") != std::string::npos) return {m, -1};
    return {m.substr(0, dot + 1), std::stol(last)};
  };
  std::vector<std::string> out;
  for (size_t i = 0; i < modules.size();) {
    const auto [prefix, first] = split(modules[i]);
    size_t j = i + 1;
    while (first >= 0 && j < modules.size() && split(modules[j]) == std::make_pair(prefix, first + static_cast<long>(j - i)))
      ++j;
    out.push_back(j - i > 1 ? prefix + std::to_string(first) + "-" + std::to_string(first + static_cast<long>(j - i) - 1)
                            : modules[i]);
    i = j;
  }
  return out;
}

// The expert caches are as large as the plan billed them.
ExpertStoreOptions expert_store_options(const ModelOptions& options, const PlannedMap& plan, ThreadPool& pool) {
  ExpertStoreOptions o;
  o.compute_dtype = options.dtype;
  o.pool = &pool;
  o.host_cache_experts = plan.host_expert_cache;
  o.device_cache_experts = plan.device_expert_cache;
  o.cache_policy = options.expert_cache_policy == "lru" ? ExpertCache::Policy::lru : ExpertCache::Policy::lfu;
  o.local_tokens = plan.expert_local_tokens;
  o.progress = options.load_progress;
  return o;
}

}  // namespace

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::filesystem::path& dir, const ModelOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (!std::filesystem::is_directory(dir))
    throw Error("not a model folder", dir.string(), "", "pass the folder holding config.json");
  if (options.expert_cache_policy != "lru" && options.expert_cache_policy != "lfu")
    throw Error("unknown expert cache policy '" + options.expert_cache_policy + "'", "", "", "use lru or lfu");
  const ComputeMode compute = parse_compute_mode(options.compute);
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->config = ModelConfig::from_file(dir / "config.json");
  impl->generation = GenerationConfig::from_dir(dir);
  impl->pool = std::make_unique<ThreadPool>(options.threads);
  impl->devices = std::make_unique<DeviceSet>(options.sim_devices, options.gpus);
  Checkpoint checkpoint = Checkpoint::open(dir);
  check_layer_count(impl->config, checkpoint);
  impl->quantized = std::make_unique<QuantizedWeights>(impl->config, checkpoint, read_quant_scheme(dir, checkpoint),
                                                       parse_quantize(options.quantize), options.quantize_all);
  const QuantizedWeights& quantized = *impl->quantized;

  // Plan and check before reading a single weight.
  PlannedMap plan = plan_device_map(impl->config, checkpoint, quantized, options, *impl->devices, *impl->pool);
  std::unordered_set<std::string> names;
  collect_names(plan.tree.root, "", names);
  auto blocks = model_blocks(impl->config);
  auto placement = place_blocks(blocks, plan.device_map, plan.main_accelerator, *impl->devices,
                                [&](const std::string& key) { return names.count(key) != 0; });

  WeightStoreOptions store;
  store.compute_dtype = options.dtype;
  store.offload_folder = options.offload_folder;
  store.pool = impl->pool.get();
  store.disk_read_slots = kDiskReadSlots;
  store.staging_slots = plan.staging_slots;
  store.progress = options.load_progress;
  store.warning = options.warning;
  store.convert_progress = options.convert_progress;
  store.quantized = &quantized;
  auto experts = model_experts(impl->config);
  const auto expert_placement = place_experts(experts, blocks, placement, plan.device_map, *impl->devices);
  ExpertStore::check(checkpoint, experts, &quantized);  // before the weight store reads anything
  // Quantized experts the offload folder holds, beside the blocks' matrices:
  // all those made in situ (made once, read from there on every run), and
  // the pre-quantized ones of the disk tier (repacked once, read as held).
  for (size_t i = 0; i < experts.size(); ++i) {
    const std::string& gate = experts[i].gate.name;
    const bool on_disk = expert_placement[i].tier.kind == plan::Device::disk;
    if (quantized.layout_of(gate) && (quantized.made_in_situ(gate) || on_disk))
      for (const WeightSpec* w : experts[i].weights()) store.folder_matrices.push_back(w);
  }
  impl->weights = std::make_unique<WeightStore>(std::move(checkpoint), blocks, placement, impl->devices->cpu(), store);
  ExpertStoreOptions expert_options = expert_store_options(options, plan, *impl->pool);
  expert_options.quantized = &quantized;
  expert_options.folder = &impl->weights->offload_folder();
  impl->experts = std::make_unique<ExpertStore>(impl->weights->checkpoint(), std::move(experts), expert_placement,
                                                impl->devices->cpu(), expert_options);
  impl->model = create_model(impl->config, std::move(blocks), *impl->weights, impl->experts->expert_bytes());
  impl->executor = std::make_unique<Executor>(*impl->model, *impl->weights, *impl->experts, std::move(placement),
                                              impl->devices->cpu(), *impl->pool, compute);
  impl->device_map = std::move(plan.device_map);
  impl->max_memory = std::move(plan.max_memory);
  impl->usage = std::move(plan.usage);
  impl->plan_source = std::move(plan.source);
  impl->offload_choice = std::move(plan.offload_choice);
  impl->expert_compute_choice = std::move(plan.expert_choice);
  impl->load_seconds = seconds_since(start);
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

const ModelConfig& Model::config() const { return impl_->config; }
const GenerationConfig& Model::generation_config() const { return impl_->generation; }
const std::filesystem::path& Model::dir() const { return impl_->dir; }
int Model::threads() const { return impl_->pool->size(); }
double Model::load_seconds() const { return impl_->load_seconds; }
uint64_t Model::weight_bytes_per_token() const { return impl_->model->weight_bytes_per_token(); }

uint64_t Model::host_computed_bytes_per_token() const {
  const auto& placement = impl_->executor->placement();
  uint64_t total = 0;
  for (size_t b = 0; b < placement.size(); ++b)
    if (placement[b].exec->host_addressable()) total += impl_->model->block_bytes_per_token(b);
  return total;
}
uint64_t Model::checkpoint_bytes() const { return impl_->weights->total_bytes(); }
uint64_t Model::disk_bytes_per_pass() const { return impl_->weights->disk_bytes_per_pass(); }
uint64_t Model::copied_bytes_per_pass() const { return impl_->weights->copied_bytes_per_pass(); }
const std::string& Model::plan_source() const { return impl_->plan_source; }
const std::string& Model::offload_choice() const { return impl_->offload_choice; }
const std::string& Model::expert_compute_choice() const { return impl_->expert_compute_choice; }
std::string Model::compute_description() const { return impl_->executor->cpu_ops().describe(); }

std::filesystem::path Model::offload_folder() const { return impl_->weights->offload_folder().dir(); }

ExpertStats Model::expert_stats() const { return impl_->experts->stats(); }

std::string Model::device_map_json() const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [module, device] : impl_->device_map) {
    if (device.is_gpu())
      j[module] = device.index;
    else
      j[module] = device.to_string();
  }
  return j.dump();
}

std::vector<DeviceReport> Model::devices() const {
  std::vector<DeviceReport> out;
  auto modules_on = [&](const plan::Device& d) {
    std::vector<std::string> modules;
    for (const auto& [module, device] : impl_->device_map)
      if (device == d) modules.push_back(module.empty() ? "(everything)" : module);
    return collapse_runs(modules);
  };
  auto report = [&](const std::string& name, const plan::Device& key, const Device* device) {
    DeviceReport r;
    r.name = name;
    r.budget = plan::budget_of(impl_->max_memory, key);
    r.capacity = device ? device->capacity() : Device::kUnlimited;
    r.in_use = device ? device->in_use() : 0;
    r.peak = device ? device->peak() : 0;
    r.modules = modules_on(key);
    if (const plan::DeviceUse* use = impl_->usage.find(key)) {
      r.weight_bytes = use->weights;
      r.planned_bytes = key == plan::Device::disk_() ? use->weights : use->total();
    }
    // Modules kept in RAM or on disk while there are accelerators are offloaded;
    // the GPU runs them streamed, or the CPU where they lie.
    const bool has_accelerators = !impl_->devices->accelerators().empty();
    for (const BlockPlacement& p : impl_->executor->placement())
      if (p.exec == device && p.tier.kind != plan::Device::gpu && has_accelerators) r.runs_offloaded = true;
    return r;
  };
  for (Device* d : impl_->devices->all())
    out.push_back(report(d->name(), d->is_accelerator() ? plan::Device::gpu_(d->ordinal()) : plan::Device::cpu_(), d));
  out.push_back(report("disk", plan::Device::disk_(), nullptr));
  return out;
}

std::vector<float> Model::logits(std::span<const int32_t> ids, int64_t rows, int64_t tokens) {
  if (rows <= 0 || tokens <= 0 || ids.size() != static_cast<size_t>(rows * tokens))
    throw Error("logits: ids must hold rows x tokens values");
  Session session(*this, rows, tokens, /*all_positions=*/true);
  const auto out = session.feed(ids, tokens, /*all_positions=*/true);
  return {out.begin(), out.end()};
}

struct Session::State {
  std::unique_ptr<SessionState> state;
};

Session::Session(Model& model, int64_t rows, int64_t capacity, bool all_positions) : model_(model) {
  if (rows <= 0 || capacity <= 0) throw Error("a session needs at least one row and one token of capacity");
  state_ = std::make_unique<State>(State{model.impl().executor->new_session(rows, capacity, all_positions)});
}

Session::~Session() = default;

std::span<const float> Session::feed(std::span<const int32_t> ids, int64_t tokens, bool all_positions) {
  return model_.impl().executor->forward(*state_->state, ids, tokens, all_positions);
}

std::span<const float> Session::feed_prompts(const std::vector<std::vector<int32_t>>& prompts) {
  KVCache& cache = state_->state->cache;
  if (static_cast<int64_t>(prompts.size()) != cache.rows())
    throw Error("feed_prompts: " + std::to_string(prompts.size()) + " prompts for a session of " +
                std::to_string(cache.rows()) + " rows");
  if (cache.longest() != 0) throw Error("feed_prompts: the session already holds tokens", "", "", "reset() it first");
  size_t longest = 0;
  for (const auto& p : prompts) {
    if (p.empty()) throw Error("a prompt is empty", "", "", "give at least one token, e.g. BOS");
    longest = std::max(longest, p.size());
  }
  // Padding takes the prompt's first id: any valid id would do, nothing attends to it.
  std::vector<int32_t> ids;
  ids.reserve(prompts.size() * longest);
  for (size_t r = 0; r < prompts.size(); ++r) {
    const size_t pad = longest - prompts[r].size();
    ids.insert(ids.end(), pad, prompts[r].front());
    ids.insert(ids.end(), prompts[r].begin(), prompts[r].end());
    cache.set_row_start(static_cast<int64_t>(r), static_cast<int64_t>(pad));
  }
  return feed(ids, static_cast<int64_t>(longest));
}

std::span<const float> Session::feed_segments(std::span<const int32_t> ids, std::span<const StepSegment> segments) {
  return model_.impl().executor->forward_segments(*state_->state, ids, segments);
}

int64_t Session::max_step_tokens() const { return state_->state->limits.max_tokens; }
int64_t Session::length() const { return state_->state->cache.longest(); }
int64_t Session::length(int64_t row) const { return state_->state->cache.length(row); }
int64_t Session::capacity() const { return state_->state->cache.capacity(); }
int64_t Session::rows() const { return state_->state->cache.rows(); }
void Session::reset() {
  for (int64_t r = 0; r < rows(); ++r) reset_row(r);
}

void Session::reset_row(int64_t row) {
  KVCache& cache = state_->state->cache;
  if (row < 0 || row >= cache.rows()) throw Error("reset_row: no row " + std::to_string(row));
  cache.set_length(row, 0);
  cache.set_row_start(row, 0);
}

}  // namespace strata
