// The executor: runs a model's blocks in order on their devices, with the
// hooks around each (DESIGN.md, "Execution: hooks and streaming"):
// pre-forward moves the activation to the block's device when the previous
// block ran elsewhere and brings the block's offloaded weights there;
// post-forward releases what the block read from the disk tier.
// Thread-safety: one thread drives it, with the model's thread pool.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/device.h"
#include "backend/kv_cache.h"
#include "core/thread_pool.h"
#include "models/causal_lm.h"
#include "runtime/placement.h"
#include "runtime/weight_store.h"

namespace strata {

// What one session keeps between steps: the KV cache beside each layer's
// device, a workspace on every executing device, the logits on the host.
struct SessionState {
  SessionState(KVCache kv, StepLimits step_limits) : cache(std::move(kv)), limits(step_limits) {}
  KVCache cache;
  StepLimits limits;
  std::vector<DeviceBuffer> workspaces;  // one per executing device
  std::vector<float*> block_workspace;   // per block: its device's workspace
  // On the host (sizes: session_host_sizes): the ids of one step, a stop for
  // an activation between two accelerators, the logits returned.
  DeviceBuffer chunk_ids, bounce, logits;
  std::vector<StepSegment> segments;  // of a uniform step: one per row
  std::vector<bool> rows_seen;        // checking a ragged step's rows
};

class Executor {
 public:
  Executor(CausalLM& model, WeightStore& weights, ExpertSource& experts, std::vector<BlockPlacement> placement,
           Device& host, ThreadPool& pool, ComputeMode compute = ComputeMode::exact);
  const CpuOps& cpu_ops() const { return cpu_ops_; }

  // A session of `rows` sequences of up to `capacity` tokens; all_logits if
  // it will ask for the logits of every position. Allocates on the devices.
  std::unique_ptr<SessionState> new_session(int64_t rows, int64_t capacity, bool all_logits);

  // Appends `tokens` ids to every row and returns logits ([rows, vocab], or
  // [rows, tokens, vocab] with all_positions), valid until the next call.
  // Prompts longer than a step's limit are fed in chunks.
  std::span<const float> forward(SessionState& state, std::span<const int32_t> ids, int64_t tokens,
                                 bool all_positions);
  // One ragged step (Session::feed_segments): each segment's last-position
  // logits, [segments, vocab].
  std::span<const float> forward_segments(SessionState& state, std::span<const int32_t> ids,
                                          std::span<const StepSegment> segments);

  const std::vector<BlockPlacement>& placement() const { return placement_; }

 private:
  void run_chunk(SessionState& state, const ForwardStep& step);
  void move_activation(SessionState& state, size_t from_block, size_t to_block, const ForwardStep& step);

  CausalLM& model_;
  WeightStore& weights_;
  ExpertSource& experts_;
  std::vector<BlockPlacement> placement_;
  Device& host_;
  ThreadPool& pool_;
  CpuOps cpu_ops_;               // for every host-addressable device
  std::vector<Ops*> block_ops_;  // per block: its executing device's ops
};

}  // namespace strata
