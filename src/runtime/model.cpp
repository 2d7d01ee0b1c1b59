#include "strata/model.h"

#include <chrono>

#include "backend/cpu/thread_pool.h"
#include "backend/kv_cache.h"
#include "models/causal_lm.h"
#include "runtime/model_impl.h"
#include "runtime/weight_store.h"
#include "strata/error.h"

namespace strata {

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::filesystem::path& dir, const ModelOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (!std::filesystem::is_directory(dir))
    throw Error("not a model folder", dir.string(), "", "pass the folder holding config.json");
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->config = ModelConfig::from_file(dir / "config.json");
  impl->generation = GenerationConfig::from_dir(dir);
  impl->pool = std::make_unique<ThreadPool>(options.threads);
  impl->weights = std::make_unique<WeightStore>(Checkpoint::open(dir), options.weights_in_ram, impl->pool.get());
  impl->model = create_model(impl->config, *impl->weights);
  impl->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

const ModelConfig& Model::config() const { return impl_->config; }
const GenerationConfig& Model::generation_config() const { return impl_->generation; }
const std::filesystem::path& Model::dir() const { return impl_->dir; }
int Model::threads() const { return impl_->pool->size(); }
double Model::load_seconds() const { return impl_->load_seconds; }
uint64_t Model::weight_bytes_per_token() const { return impl_->model->weight_bytes_per_token(); }
uint64_t Model::checkpoint_bytes() const { return impl_->weights->total_bytes(); }

std::vector<float> Model::logits(std::span<const int32_t> ids, int64_t rows, int64_t tokens) {
  if (rows <= 0 || tokens <= 0 || ids.size() != static_cast<size_t>(rows * tokens))
    throw Error("logits: ids must hold rows x tokens values");
  Session session(*this, rows, tokens);
  const auto out = session.feed(ids, tokens, /*all_positions=*/true);
  return {out.begin(), out.end()};
}

struct Session::State {
  KVCache cache;
};

Session::Session(Model& model, int64_t rows, int64_t capacity) : model_(model) {
  const ModelConfig& c = model.config();
  if (rows <= 0 || capacity <= 0) throw Error("a session needs at least one row and one token of capacity");
  state_ = std::make_unique<State>(State{KVCache(c.num_layers, rows, c.num_kv_heads, c.head_dim, capacity)});
}

Session::~Session() = default;

std::span<const float> Session::feed(std::span<const int32_t> ids, int64_t tokens, bool all_positions) {
  auto& impl = model_.impl();
  const ForwardStep step{ids, state_->cache.rows(), tokens, all_positions};
  return impl.model->forward(*impl.pool, state_->cache, step);
}

int64_t Session::length() const { return state_->cache.length(); }
int64_t Session::capacity() const { return state_->cache.capacity(); }
int64_t Session::rows() const { return state_->cache.rows(); }
void Session::reset() { state_->cache.set_length(0); }

}  // namespace strata
