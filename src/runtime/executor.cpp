#include "runtime/executor.h"

#include <algorithm>
#include <map>

#include "strata/error.h"

namespace strata {
namespace {
// A step's tokens are valid ids.
void check_ids(const ModelConfig& c, std::span<const int32_t> ids) {
  for (const int32_t id : ids)
    if (id < 0 || id >= c.vocab_size)
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                  std::to_string(c.vocab_size) + ")");
}

// The error for a row that would run past the cache.
Error context_full(int64_t length, int64_t tokens, int64_t capacity) {
  return Error("context full: " + std::to_string(length + tokens) + " tokens exceed the capacity of " +
                   std::to_string(capacity),
               "", "", "raise the context size");
}

}  // namespace

Executor::Executor(CausalLM& model, WeightStore& weights, ExpertSource& experts, std::vector<BlockPlacement> placement,
                   Device& host, ThreadPool& pool, ComputeMode compute)
    : model_(model), weights_(weights), experts_(experts), placement_(std::move(placement)), host_(host), pool_(pool),
      cpu_ops_(pool, compute) {
  for (const BlockPlacement& p : placement_) {
    Ops* ops = p.exec->native_ops();
    if (!ops && !p.exec->host_addressable())
      throw Error("internal: " + p.exec->name() + " has no op set and its memory is not the host's");
    block_ops_.push_back(ops ? ops : &cpu_ops_);
  }
}

std::unique_ptr<SessionState> Executor::new_session(int64_t rows, int64_t capacity, bool all_logits) {
  const ModelConfig& c = model_.config();
  const auto& blocks = model_.blocks();
  std::vector<Device*> layer_devices(static_cast<size_t>(c.num_layers));
  for (size_t b = 0; b < blocks.size(); ++b)
    if (blocks[b].layer >= 0) layer_devices[static_cast<size_t>(blocks[b].layer)] = placement_[b].exec;
  const StepLimits limits = step_limits(rows, capacity, all_logits, pool_.size());  // validates the sizes
  auto state = std::make_unique<SessionState>(KVCache(layer_devices, rows, c.num_kv_heads, c.head_dim, capacity),
                                              limits);

  const size_t workspace_bytes = workspace_floats(c, state->limits) * sizeof(float);
  std::map<Device*, float*> workspace_of;
  for (const BlockPlacement& p : placement_) {
    if (workspace_of.count(p.exec)) continue;
    state->workspaces.emplace_back(*p.exec, workspace_bytes, "activations");
    workspace_of[p.exec] = state->workspaces.back().floats();
  }
  for (const BlockPlacement& p : placement_) state->block_workspace.push_back(workspace_of.at(p.exec));

  const SessionHostSizes host = session_host_sizes(c, limits);
  state->chunk_ids = DeviceBuffer(host_, host.ids * sizeof(int32_t), "the ids of a step");
  state->logits = DeviceBuffer(host_, host.logits * sizeof(float), "the logits");
  bool between_accelerators = false;
  for (size_t b = 0; b + 1 < blocks.size(); ++b)
    between_accelerators = between_accelerators || (placement_[b].exec != placement_[b + 1].exec &&
                                                    placement_[b].exec->is_accelerator() &&
                                                    placement_[b + 1].exec->is_accelerator());
  if (between_accelerators)
    state->bounce = DeviceBuffer(host_, host.bounce * sizeof(float), "activations between two accelerators");
  state->segments.resize(static_cast<size_t>(rows));
  return state;
}

void Executor::move_activation(SessionState& state, size_t from_block, size_t to_block, const ForwardStep& step) {
  Device& from = *placement_[from_block].exec;
  Device& to = *placement_[to_block].exec;
  const WorkspaceRange range = model_.block_output(from_block, state.limits, step);
  const float* src = state.block_workspace[from_block] + range.offset;
  float* dst = state.block_workspace[to_block] + range.offset;
  const size_t bytes = range.count * sizeof(float);
  if (&from == &host_) {
    to.copy_in(dst, src, bytes);
  } else if (&to == &host_) {
    from.copy_out(dst, src, bytes);
  } else {
    from.copy_out(state.bounce.floats(), src, bytes);
    to.copy_in(dst, state.bounce.floats(), bytes);
  }
}

void Executor::run_chunk(SessionState& state, const ForwardStep& step) {
  const auto& blocks = model_.blocks();
  weights_.begin_pass();
  for (size_t b = 0; b < blocks.size(); ++b) {
    // pre_forward: the activation comes to this block's device, and its
    // offloaded weights with it.
    if (b > 0 && placement_[b].exec != placement_[b - 1].exec) move_activation(state, b - 1, b, step);
    weights_.onload(b);
    Ops* host_ops = placement_[b].exec->is_accelerator() ? &cpu_ops_ : nullptr;
    model_.run_block(b, BlockRun{*block_ops_[b], state.cache, step, state.limits, state.block_workspace[b], &experts_,
                                 host_ops});
    // post_forward: its slots may be reused, and the next streamed block's copy starts.
    weights_.release(b);
  }
  for (const StepSegment& segment : step.segments)
    state.cache.set_length(segment.row, state.cache.length(segment.row) + segment.tokens);
}


std::span<const float> Executor::forward(SessionState& state, std::span<const int32_t> ids, int64_t tokens,
                                         bool all_positions) {
  const ModelConfig& c = model_.config();
  const int64_t rows = state.limits.rows;
  KVCache& cache = state.cache;
  if (tokens <= 0 || ids.size() != static_cast<size_t>(rows * tokens))
    throw Error("forward: expected " + std::to_string(rows) + " x " + std::to_string(tokens) + " ids");
  if (cache.longest() + tokens > cache.capacity()) throw context_full(cache.longest(), tokens, cache.capacity());
  if (all_positions && !state.limits.all_logits)
    throw Error("internal: this session was not made for the logits of every position");
  check_ids(c, ids);

  const size_t vocab = static_cast<size_t>(c.vocab_size);
  float* logits = state.logits.floats();
  int32_t* chunk_ids = reinterpret_cast<int32_t*>(state.chunk_ids.data());
  const int64_t per_row = state.limits.max_tokens / rows;
  const size_t last = model_.blocks().size() - 1;
  Device& head_device = *placement_[last].exec;
  for (int64_t t0 = 0; t0 < tokens; t0 += per_row) {
    const int64_t n = std::min(per_row, tokens - t0);
    for (int64_t r = 0; r < rows; ++r) {
      std::copy_n(ids.begin() + r * tokens + t0, n, chunk_ids + r * n);
      state.segments[static_cast<size_t>(r)] = {r, n};
    }
    const ForwardStep step{std::span<const int32_t>(chunk_ids, static_cast<size_t>(rows * n)), state.segments,
                           all_positions};
    run_chunk(state, step);
    // The logits leave the head's device for the host.
    const WorkspaceRange range = model_.block_output(last, state.limits, step);
    const float* src = state.block_workspace[last] + range.offset;
    if (!all_positions) {
      if (t0 + n == tokens) head_device.copy_out(logits, src, range.count * sizeof(float));
      continue;
    }
    for (int64_t r = 0; r < rows; ++r)
      head_device.copy_out(logits + static_cast<size_t>(r * tokens + t0) * vocab,
                           src + static_cast<size_t>(r * n) * vocab, static_cast<size_t>(n) * vocab * sizeof(float));
  }
  return {logits, (all_positions ? static_cast<size_t>(rows * tokens) : static_cast<size_t>(rows)) * vocab};
}

std::span<const float> Executor::forward_segments(SessionState& state, std::span<const int32_t> ids,
                                                  std::span<const StepSegment> segments) {
  KVCache& cache = state.cache;
  if (segments.empty() || segments.size() > static_cast<size_t>(cache.rows()))
    throw Error("a step takes 1 to " + std::to_string(cache.rows()) + " segments, not " +
                std::to_string(segments.size()));
  if (ids.size() > static_cast<size_t>(state.limits.max_tokens))
    throw Error("a step of " + std::to_string(ids.size()) + " tokens exceeds the session's " +
                std::to_string(state.limits.max_tokens) + " per step");
  size_t total = 0;
  std::vector<bool>& seen = state.rows_seen;
  seen.assign(static_cast<size_t>(cache.rows()), false);
  for (const StepSegment& segment : segments) {
    if (segment.row < 0 || segment.row >= cache.rows() || seen[static_cast<size_t>(segment.row)])
      throw Error("a step's segments need distinct rows in [0, " + std::to_string(cache.rows()) + ")");
    seen[static_cast<size_t>(segment.row)] = true;
    if (segment.tokens < 1) throw Error("a step's segment needs at least one token");
    const int64_t length = cache.length(segment.row);
    if (length + segment.tokens > cache.capacity()) throw context_full(length, segment.tokens, cache.capacity());
    total += static_cast<size_t>(segment.tokens);
  }
  if (total != ids.size())
    throw Error("a step's segments hold " + std::to_string(total) + " tokens, its ids " + std::to_string(ids.size()));
  check_ids(model_.config(), ids);

  int32_t* chunk_ids = reinterpret_cast<int32_t*>(state.chunk_ids.data());
  std::copy(ids.begin(), ids.end(), chunk_ids);
  const ForwardStep step{std::span<const int32_t>(chunk_ids, ids.size()), segments, false};
  run_chunk(state, step);
  const size_t last = model_.blocks().size() - 1;
  const WorkspaceRange range = model_.block_output(last, state.limits, step);
  float* logits = state.logits.floats();
  placement_[last].exec->copy_out(logits, state.block_workspace[last] + range.offset, range.count * sizeof(float));
  return {logits, range.count};
}

}  // namespace strata
