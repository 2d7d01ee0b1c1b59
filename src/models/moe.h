// The sparse mixture-of-experts block (modeling_mixtral.py's
// MixtralSparseMoeBlock, modeling_qwen2_moe.py's Qwen2MoeSparseMoeBlock,
// modeling_qwen3_moe.py's Qwen3MoeSparseMoeBlock), written once in backend ops:
//   p = softmax(router(x)) over the experts, in float32
//   the top-k experts of each token by p, their weights p (divided by their
//   sum with norm_topk_prob)
//   out = sum over the chosen experts, in ascending expert order, of
//         expert(x) * weight
//   [+ sigmoid(shared_expert_gate(x)) * shared_expert(x)]   (Qwen2-MoE)
// The host routes: it reads the router's logits back, so it knows which
// experts a step needs before any of them computes. Each expert runs once
// per step on all the tokens routed to it (gathered rows), and every token
// sums its experts in the same order whatever else is in the batch, so
// results do not depend on batch composition.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "backend/ops.h"
#include "models/causal_lm.h"
#include "models/building_blocks.h"

namespace strata {

// A sparse layer's weights but its routed experts, which come from an
// ExpertSource once the router has chosen them.
struct MoeWeights {
  int64_t layer = -1;             // the decoder layer, as the ExpertSource knows it
  int64_t experts = 0;            // routed experts
  Linear router;                  // [experts, hidden]
  MlpWeights shared;              // Qwen2-MoE; null weights: none
  Linear shared_gate;             // [1, hidden]
  int64_t top_k = 0;
  bool normalize_top_k = false;   // norm_topk_prob (always for Mixtral)
};

// Which tokens each expert computes in one step, and with what weight.
struct Routing {
  // Per expert: the tokens routed to it in ascending order, and their weights.
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::vector<float>> weights;
  // The experts with at least one token, ascending.
  std::vector<int32_t> used;
  // Scratch of one token's routing, kept so that routing does not allocate.
  std::vector<float> probabilities;
  std::vector<int32_t> order;
};

// Routes `tokens` rows of router logits [tokens, experts] (host memory).
// Reuses the vectors of `out`, so steady decoding does not allocate.
void route(std::span<const float> logits, size_t tokens, size_t experts, int64_t top_k, bool normalize,
           Routing& out);

// Where the block reads and writes in the workspace.
struct MoeBuffers {
  const float* input;   // [tokens, hidden], normalized
  float* router;        // [tokens, experts]
  float* gathered;      // [tokens, hidden]: one expert's tokens
  float *gate, *up;     // [tokens, widest MLP]
  float* expert_out;    // [tokens, hidden]
  float* out;           // [tokens, hidden]
};

// Host memory the block keeps between steps.
struct MoeHostScratch {
  std::vector<float> logits;
  std::vector<float> shared_scales;
  std::vector<int32_t> all_tokens;  // 0..tokens-1
  Routing routing;
  std::vector<int32_t> routed;      // per fetched expert: its tokens
  std::vector<ExpertWeights> fetched;
  // Experts the CPU computes where they lie in RAM, for a layer that runs
  // on an accelerator: the layer's input comes to the host once per step.
  std::vector<float> input, gathered, gate, up, out;
};

// Runs the block on `tokens` rows of b.input into b.out, fetching the
// routed experts from `experts`. An expert fetched on_host runs on
// `host_ops` (the CPU's; null when `ops` are), on host copies of its tokens,
// and its output is added on the layer's device in the same order as the
// others'.
void moe(Ops& ops, Ops* host_ops, Activation act, const MoeWeights& w, ExpertSource& experts, const MoeBuffers& b,
         size_t tokens, size_t hidden, MoeHostScratch& host);

}  // namespace strata
