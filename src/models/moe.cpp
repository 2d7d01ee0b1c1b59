#include "models/moe.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "strata/error.h"

namespace strata {

void route(std::span<const float> logits, size_t tokens, size_t experts, int64_t top_k, bool normalize,
           Routing& out) {
  out.tokens.resize(experts);
  out.weights.resize(experts);
  for (size_t e = 0; e < experts; ++e) {
    out.tokens[e].clear();
    out.weights[e].clear();
  }
  const size_t k = static_cast<size_t>(top_k);
  std::vector<float>& p = out.probabilities;
  std::vector<int32_t>& order = out.order;
  p.resize(experts);
  order.resize(experts);
  for (size_t t = 0; t < tokens; ++t) {
    // F.softmax(router_logits, dim=1, dtype=torch.float).
    const float* row = logits.data() + t * experts;
    const float max = *std::max_element(row, row + experts);
    float sum = 0;
    for (size_t e = 0; e < experts; ++e) {
      p[e] = std::exp(row[e] - max);
      sum += p[e];
    }
    for (size_t e = 0; e < experts; ++e) p[e] /= sum;
    // torch.topk: the k largest, largest first (a tie goes to the lower
    // index; the fixtures' routers are far from ties).
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                      [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float chosen = 0;
    for (size_t i = 0; i < k; ++i) chosen += p[static_cast<size_t>(order[i])];
    for (size_t i = 0; i < k; ++i) {
      const size_t e = static_cast<size_t>(order[i]);
      out.tokens[e].push_back(static_cast<int32_t>(t));
      out.weights[e].push_back(normalize ? p[e] / chosen : p[e]);
    }
  }
  out.used.clear();
  for (size_t e = 0; e < experts; ++e)
    if (!out.tokens[e].empty()) out.used.push_back(static_cast<int32_t>(e));
}

namespace {

// One expert computed by the CPU for a layer on an accelerator: its tokens'
// rows are taken from the host copy of the input, its output goes back into
// b.expert_out. The first such expert of a step brings the input over.
void expert_on_host(Ops& ops, Ops& host_ops, Activation act, const MlpWeights& expert, const MoeBuffers& b,
                    size_t tokens, size_t hidden, std::span<const int32_t> rows, MoeHostScratch& host) {
  if (host.input.empty()) {
    host.input.resize(tokens * hidden);
    ops.to_host(host.input.data(), b.input, tokens * hidden);
  }
  const size_t n = rows.size(), width = static_cast<size_t>(expert.gate.weight.rows);
  host.gathered.resize(n * hidden);
  host.gate.resize(n * width);
  host.up.resize(n * width);
  host.out.resize(n * hidden);
  host_ops.gather_rows(host.input.data(), hidden, rows, host.gathered.data());
  mlp(host_ops, act, expert, host.gathered.data(), n, host.gate.data(), host.up.data(), host.out.data());
  ops.from_host(b.expert_out, host.out.data(), n * hidden);
}

}  // namespace

void moe(Ops& ops, Ops* host_ops, Activation act, const MoeWeights& w, ExpertSource& source, const MoeBuffers& b,
         size_t tokens, size_t hidden, MoeHostScratch& host) {
  const size_t experts = static_cast<size_t>(w.experts);
  const MatmulOutput router[] = {{w.router.weight, w.router.bias, b.router}};
  ops.matmul(b.input, tokens, router);
  host.logits.resize(tokens * experts);
  ops.to_host(host.logits.data(), b.router, tokens * experts);
  route(host.logits, tokens, experts, w.top_k, w.normalize_top_k, host.routing);

  // The used experts in ascending order, as many at a time as the source
  // has room for: each token sums its experts in the same order whatever
  // the chunking.
  ops.zero(b.out, tokens * hidden);
  const std::span<const int32_t> used = host.routing.used;
  const size_t per_fetch = std::max<size_t>(source.max_fetch(w.layer), 1);
  host.fetched.resize(std::min(per_fetch, used.size()));
  host.routed.resize(used.size());
  for (size_t i = 0; i < used.size(); ++i)
    host.routed[i] = static_cast<int32_t>(host.routing.tokens[static_cast<size_t>(used[i])].size());
  host.input.clear();
  for (size_t first = 0; first < used.size(); first += per_fetch) {
    const size_t count = std::min(per_fetch, used.size() - first);
    const std::span<const int32_t> chunk = used.subspan(first, count);
    source.fetch(w.layer, chunk, std::span<const int32_t>(host.routed).subspan(first, count),
                 std::span<ExpertWeights>(host.fetched).first(count));
    for (size_t i = 0; i < chunk.size(); ++i) {
      source.wait(i);
      const size_t e = static_cast<size_t>(chunk[i]);
      const std::vector<int32_t>& rows = host.routing.tokens[e];
      const ExpertWeights& x = host.fetched[i];
      const MlpWeights expert{{x.gate, nullptr}, {x.up, nullptr}, {x.down, nullptr}};
      if (x.on_host) {
        if (!host_ops) throw Error("internal: an expert to compute on the host, but no host ops");
        expert_on_host(ops, *host_ops, act, expert, b, tokens, hidden, rows, host);
      } else {
        ops.gather_rows(b.input, hidden, rows, b.gathered);
        mlp(ops, act, expert, b.gathered, rows.size(), b.gate, b.up, b.expert_out);
      }
      ops.add_scaled_rows(b.out, b.expert_out, hidden, rows, host.routing.weights[e]);
    }
  }
  if (!w.shared.down.weight.data) return;
  // Qwen2-MoE: out += sigmoid(shared_expert_gate(x)) * shared_expert(x).
  mlp(ops, act, w.shared, b.input, tokens, b.gate, b.up, b.expert_out);
  const MatmulOutput gate[] = {{w.shared_gate.weight, w.shared_gate.bias, b.router}};
  ops.matmul(b.input, tokens, gate);
  host.shared_scales.resize(tokens);
  ops.to_host(host.shared_scales.data(), b.router, tokens);
  for (float& s : host.shared_scales) s = 1.0f / (1.0f + std::exp(-s));
  host.all_tokens.resize(tokens);
  std::iota(host.all_tokens.begin(), host.all_tokens.end(), 0);
  ops.add_scaled_rows(b.out, b.expert_out, hidden, host.all_tokens, host.shared_scales);
}

}  // namespace strata
