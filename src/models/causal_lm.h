// How the runtime sees a model: a causal language model cut into blocks (the
// embeddings, each decoder layer, the final norm, the head) that it places on
// devices and runs one after another, with hooks between them that move
// activations and weights (DESIGN.md, "Execution: hooks and streaming").
// models/decoder.cpp implements it for every family, set up by the family's
// description (models/architecture.h).
//
// Models name their blocks and weights with Hugging Face names and express
// each block in backend ops; they never know where a weight lives.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/kv_cache.h"
#include "backend/ops.h"
#include "backend/tensor_view.h"
#include "models/module_decl.h"
#include "strata/model_config.h"
#include "strata/step_segment.h"

namespace strata {

// Where a model's weights come from. The runtime implements it (tiers,
// devices, streaming slots); the model only asks by Hugging Face name and
// expected shape, once, when it is created. The views it gets stay valid for
// the model's life; the runtime fills streamed ones before the block runs.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // A [rows, cols] matrix in F32/BF16/F16; throws strata::Error naming the
  // tensor when missing or of another shape.
  virtual MatrixView matrix(const std::string& name, int64_t rows, int64_t cols) = 0;
  // A 1-D parameter held as f32.
  virtual const float* vector_f32(const std::string& name, int64_t size) = 0;
};

// One tensor a block reads.
struct WeightSpec {
  std::string name;
  std::vector<int64_t> shape;  // as the model reads it: [rows, cols] for a matrix, [n] for a 1-D parameter
  // Stored as [cols, rows] (GPT-2's Conv1D): the runtime holds it transposed.
  bool transposed = false;
  bool is_vector() const { return shape.size() == 1; }
  // The shape in the checkpoint.
  std::vector<int64_t> stored_shape() const { return transposed ? std::vector<int64_t>{shape[1], shape[0]} : shape; }
};

// A unit the runtime places on one device and runs hooks around.
struct BlockSpec {
  std::string module;  // Hugging Face module name: "model.embed_tokens", "model.layers.3", "model.norm", "lm_head"
  Role role = Role::none;
  std::vector<WeightSpec> weights;
  int64_t layer = -1;  // the decoder layer whose KV cache it uses, else -1
  // It reads a few rows of its weights per token (an embedding that no other
  // block shares): kept in RAM or on disk, it runs on the CPU where they
  // lie, since copying the whole table to an accelerator for a lookup
  // costs far more than moving its output.
  bool lookup = false;
};

// The blocks of config.architecture in execution order. A tied head reads
// the embedding (as transformers ties them, whatever else the file holds).
// A sparse layer's block holds everything but its routed experts.
std::vector<BlockSpec> model_blocks(const ModelConfig& config);

// A routed expert of a sparse layer: a weight group of its own, placed,
// tiered and cached apart from its layer (DESIGN.md, "the unit of placement"),
// fetched only when the router picks it.
struct ExpertSpec {
  std::string module;  // "model.layers.3.mlp.experts.17"
  int64_t layer = 0;
  int64_t expert = 0;
  WeightSpec gate, up, down;  // [width, hidden], [width, hidden], [hidden, width]
  std::vector<const WeightSpec*> weights() const { return {&gate, &up, &down}; }
};
// The routed experts of every sparse layer, layer by layer in expert order.
std::vector<ExpertSpec> model_experts(const ModelConfig& config);

// An expert's matrices on the device that computes it: the layer's, or with
// on_host the CPU, where the expert lies in RAM (its tokens go there and its
// output comes back; DESIGN.md, "Execution": where a group runs is a cost
// decision).
struct ExpertWeights {
  MatrixView gate, up, down;
  bool on_host = false;
};

// Where routed experts come from: the model routes first, then asks for the
// experts its step uses, and the runtime makes them available on the
// executing device (resident there, or fetched into a cache).
// Thread-safety: called by the one thread that runs the model.
class ExpertSource {
 public:
  virtual ~ExpertSource() = default;
  // The most experts one fetch may ask for (the caches' room).
  virtual size_t max_fetch(int64_t layer) const = 0;
  // Starts bringing experts ids of decoder layer `layer` (distinct, at most
  // max_fetch), routed to tokens[i] tokens each, to the device that computes
  // them; out[i] will hold expert ids[i], usable once wait(i) returns and
  // until the next fetch. Reads run in the background, so the experts that
  // are there compute while the others arrive. Compute queued on the views
  // before the next fetch is safe: a fetch that reuses memory waits for it.
  virtual void fetch(int64_t layer, std::span<const int32_t> ids, std::span<const int32_t> tokens,
                     std::span<ExpertWeights> out) = 0;
  // Blocks until out[i] of the last fetch is in place; rethrows a read error.
  virtual void wait(size_t i) = 0;
};

// One forward step (DESIGN.md: a step is ragged): each segment appends its
// tokens to its own KV cache row, after the positions that row holds.
struct ForwardStep {
  std::span<const int32_t> ids;  // the segments' ids, one segment after another
  std::span<const StepSegment> segments;  // distinct rows
  bool all_logits = false;  // logits of every position, else of each segment's last one
  size_t tokens() const { return ids.size(); }
  size_t logit_rows() const { return all_logits ? ids.size() : segments.size(); }
};

// The largest steps a session runs. It fixes the workspace layout, which is
// the same on every device, so an activation sits at the same offset in each.
struct StepLimits {
  int64_t rows = 1;
  int64_t max_tokens = 1;  // tokens of one step, all rows together
  int64_t logit_rows = 1;
  int64_t capacity = 1;    // KV positions per row
  int workers = 1;         // thread-pool size (attention keeps scores per worker)
  bool all_logits = false;  // steps may return every position's logits
};

// Prompts are fed in chunks of at most this many tokens (all rows together),
// so activation memory is bounded whatever the prompt length. Results do not
// depend on the chunking: every op reduces each output in a fixed order.
inline constexpr int64_t kMaxStepTokens = 256;

// The most rows and context tokens a session may have: far beyond any model,
// and small enough that no byte count derived from them can overflow.
inline constexpr int64_t kMaxRows = int64_t{1} << 16;
inline constexpr int64_t kMaxContext = int64_t{1} << 24;

// The limits of a session of `rows` x `capacity` tokens. Throws strata::Error
// for rows or capacity outside [1, kMaxRows] and [1, kMaxContext].
StepLimits step_limits(int64_t rows, int64_t capacity, bool all_logits, int workers);

// Elements of a session's host buffers: the logits it returns (every
// position's with all_logits), the ids of one step, and the largest
// activation that may stop on the host between two accelerators.
struct SessionHostSizes {
  size_t logits = 0, ids = 0, bounce = 0;
};
SessionHostSizes session_host_sizes(const ModelConfig& config, const StepLimits& limits);

// Floats of scratch every executing device needs for steps within `limits`
// (the planner budgets it from the config alone, before anything is loaded).
size_t workspace_floats(const ModelConfig& config, const StepLimits& limits);

// What one block runs with: its device's workspace and the step.
struct BlockRun {
  Ops& ops;  // the executing device's op set
  KVCache& cache;
  const ForwardStep& step;
  const StepLimits& limits;
  float* workspace;  // workspace_floats(limits) floats on the block's device
  ExpertSource* experts = nullptr;  // a sparse layer's routed experts
  Ops* host_ops = nullptr;          // the CPU's, when ops are an accelerator's: experts computed in RAM
};

// A range of the workspace, in floats.
struct WorkspaceRange {
  size_t offset = 0;
  size_t count = 0;
};

class CausalLM {
 public:
  virtual ~CausalLM() = default;
  virtual const ModelConfig& config() const = 0;
  virtual const std::vector<BlockSpec>& blocks() const = 0;
  // Runs one block. The first reads the step's ids; each later one reads the
  // previous block's output (block_output) from the same offsets of its own
  // workspace. Decoder layers append this step to their KV cache rows.
  virtual void run_block(size_t block, const BlockRun& run) = 0;
  // Where block's result lies in the workspace; the last block's is the
  // logits, [rows, vocab] or with all_logits [rows * tokens, vocab].
  virtual WorkspaceRange block_output(size_t block, const StepLimits& limits, const ForwardStep& step) const = 0;
  // Bytes of weights one decode step reads in block b (every matrix once,
  // one embedding row).
  virtual uint64_t block_bytes_per_token(size_t block) const = 0;
  // The same over all blocks.
  uint64_t weight_bytes_per_token() const {
    uint64_t total = 0;
    for (size_t b = 0; b < blocks().size(); ++b) total += block_bytes_per_token(b);
    return total;
  }
};

// Creates the model for config.architecture from its model_blocks(), binding
// their weights from the source; routed experts come through BlockRun::experts,
// each held in expert_bytes (the expert source's; for the bytes a token reads).
std::unique_ptr<CausalLM> create_model(const ModelConfig& config, std::vector<BlockSpec> blocks,
                                       WeightSource& weights, uint64_t expert_bytes);

}  // namespace strata
