// The op set a model runs, per device (DESIGN.md, "Devices and tiers"). Every
// executing device has one: the CPU's (which sim:N devices share, their
// memory being host memory) and the CUDA backend's. A model calls the ops of
// the device its block runs on (BlockRun::ops) with pointers into that
// device's memory, so the model never knows where it runs.
//
// Activations are f32 throughout; weight matrices are f32, bf16, f16 or a
// quantized layout (quant/quant_layout.h) and are widened exactly, so every
// backend computes the same math and differs only in summation order. Math follows transformers' modeling_llama.py,
// with the variants of modeling_gpt2.py, modeling_gemma.py,
// modeling_gemma2.py, modeling_phi3.py and modeling_qwen3.py.
// Thread-safety: an Ops object is used by the one thread running the model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "backend/rope.h"
#include "backend/tensor_view.h"

namespace strata {

// One product of a matmul batch: out[n, w.rows] = x[n, w.cols] @ w^T (+ bias).
struct MatmulOutput {
  MatrixView weight;
  const float* bias = nullptr;  // f32 [w.rows] or null
  float* out = nullptr;         // [n, w.rows], row-major
};

// Causal attention of T new query tokens of one sequence against its cache.
struct AttentionShape {
  int heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int window = 0;  // sliding window (Mistral): a query sees this many positions; 0 = all
  // Scores are dot(q, k) * scale. A model always sets it (Gemma's is
  // query_pre_attn_scalar^-0.5); 0 means 1/sqrt(head_dim), for callers that do not.
  float scale = 0;
  // 0: none; else score = tanh(score / softcap) * softcap, after scaling and
  // before the mask and softmax, as Gemma 2's eager attention does.
  float softcap = 0;
};

// The activation of an MLP, applied in float32:
//   silu(v)      = v / (1 + exp(-v))
//   gelu_tanh(v) = 0.5 * v * (1 + tanh(sqrt(2/pi) * (v + 0.044715 * v^3)))
// gelu_tanh is transformers' `gelu_pytorch_tanh` (torch gelu approximate="tanh")
// and GPT-2's `gelu_new`, which are the same function.
enum class Activation { silu, gelu_tanh };

// The math of matrix products. exact: weights widened to f32, f32
// products and sums (bit-identical across maps, batches and backends' CPU
// paths; the fidelity guarantees rest on it; quantized weights are widened
// exactly too). fast: BF16 weights multiply activations rounded to bf16 at
// the product's input (bf16 x bf16 products, f32 sums: AVX512-BF16 where the
// CPU has it), and --quantize's int8/int4 weights activations rounded per
// block of 32 to int8 (integer dot products); everything else, and other
// weight formats, as exact. Results then depend on the CPU.
enum class ComputeMode { exact, fast };
// "exact" or "fast"; throws strata::Error for anything else.
ComputeMode parse_compute_mode(std::string_view text);

// The ops, for the conformance test's "not supported" answers.
enum class OpKind {
  matmul,
  rms_norm,
  layer_norm,
  embedding,
  add,
  glu,
  activate,
  scale,
  softcap,
  rope,
  store_kv,
  attention,
  copy,
  zero,
  gather_rows,
  add_scaled_rows,
  to_host,
  from_host
};

class Ops {
 public:
  virtual ~Ops() = default;
  // "cpu", "cuda".
  virtual std::string_view name() const = 0;
  // Whether the op runs here with weights of this dtype (matmul, embedding;
  // the others take f32 only and ignore it).
  virtual bool supports(OpKind op, DType weights) const = 0;
  // Whether matmul or embedding run here with weights in a quantized layout.
  virtual bool supports(OpKind op, const QuantLayout& layout) const = 0;

  // Several products that share the input x ([n, cols], row stride cols), e.g. q/k/v.
  virtual void matmul(const float* x, size_t n, std::span<const MatmulOutput> outputs) = 0;
  // y = (weight_offset + weight) * (x * rsqrt(mean(x^2) + eps)) per row of
  // length dim. weight_offset is 0 for Llama and 1 for Gemma, whose RMSNorm
  // multiplies by (1 + weight) (modeling_gemma.py); with 0 the result is that
  // of weight * (...) bit for bit, 0 + w being exactly w (a -0 weight turns
  // +0, which changes no sum). y may be x: Qwen3 normalizes q/k heads in place.
  virtual void rms_norm(const float* x, const float* weight, float weight_offset, size_t rows, size_t dim,
                        float eps, float* y) = 0;
  // torch's nn.LayerNorm per row of length dim (GPT-2): mean and biased
  // variance, y = (x - mean) / sqrt(var + eps) * weight + bias; bias may be null.
  virtual void layer_norm(const float* x, const float* weight, const float* bias, size_t rows, size_t dim,
                          float eps, float* y) = 0;
  // out[i] = table row ids[i] widened to f32. ids are in host memory and valid.
  virtual void embedding(const MatrixView& table, std::span<const int32_t> ids, float* out) = 0;
  // x += y
  virtual void add_inplace(float* x, const float* y, size_t n) = 0;
  // gate = act(gate) * up: the gated MLP (Llama, Gemma, Phi-3, Qwen3).
  virtual void glu(Activation act, float* gate, const float* up, size_t n) = 0;
  // x = act(x): the plain MLP (GPT-2).
  virtual void activate(Activation act, float* x, size_t n) = 0;
  // x *= factor (Gemma's embedding normalizer, sqrt(hidden_size)).
  virtual void scale(float* x, float factor, size_t n) = 0;
  // x = tanh(x / cap) * cap: Gemma 2's final-logit soft-capping, divided,
  // tanh'd and multiplied in float32 as transformers does.
  virtual void softcap(float* x, float cap, size_t n) = 0;
  // Rotates x [rows * tokens, heads, head_dim] in place: token t of row r sits
  // in cache slot past + t and is at position max(past + t - row_starts[r], 0)
  // (a left-padded row counts positions from its first real token).
  // row_starts is in host memory.
  virtual void rope(const Rope& rope, float* x, int heads, int64_t rows, int64_t tokens, int64_t past,
                    std::span<const int64_t> row_starts) = 0;
  // Writes `tokens` tokens' keys and values ([tokens, kv_heads, head_dim])
  // into cache slots first_slot.. of one row's [kv_heads][capacity][head_dim].
  virtual void store_kv(const float* k, const float* v, size_t tokens, int kv_heads, int head_dim,
                        size_t capacity, size_t first_slot, float* keys, float* values) = 0;
  // q: [T, heads, head_dim]; keys/values: [kv_heads, capacity, head_dim]
  // holding slots 0..past+T-1; out: [T, heads, head_dim]. Query t sits in
  // slot past + t and sees slots start..past+t (before `start`: a
  // left-padded row's padding). scratch: StepLimits::workers x capacity
  // floats of this device's workspace, for backends that want it.
  virtual void attention(const AttentionShape& shape, const float* q, size_t tokens, size_t past, size_t start,
                         const float* keys, const float* values, size_t capacity, float* out,
                         std::span<float> scratch) = 0;
  // n floats within this device's memory.
  virtual void copy(float* dst, const float* src, size_t n) = 0;
  // x = 0 (n floats).
  virtual void zero(float* x, size_t n) = 0;

  // Mixture-of-experts routing (modeling_mixtral.py's loop over experts).
  // dst[i] = src[rows[i]] for rows of `cols` floats: the tokens one expert
  // computes, gathered. rows is in host memory.
  virtual void gather_rows(const float* src, size_t cols, std::span<const int32_t> rows, float* dst) = 0;
  // dst[rows[i]] += src[i] * scales[i], the product rounded to f32 before
  // the add, as torch's index_add_ of (expert output * routing weight).
  // rows are distinct; rows and scales are in host memory.
  virtual void add_scaled_rows(float* dst, const float* src, size_t cols, std::span<const int32_t> rows,
                               std::span<const float> scales) = 0;
  // Copies n floats of this device's memory to host memory once the work
  // queued before it is done: the router's logits, which the host reads to
  // decide which experts to fetch.
  virtual void to_host(float* host_dst, const float* src, size_t n) = 0;
  // Copies n floats of host memory into this device's memory, ordered with
  // the queued work: an expert's output computed by the CPU where its
  // weights lie. host_src may change as soon as it returns.
  virtual void from_host(float* dst, const float* host_src, size_t n) = 0;
};

}  // namespace strata
