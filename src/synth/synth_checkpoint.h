// Synthetic checkpoints: random weights in the Hugging Face layout.
//
// `strata synth`, the benchmarks and the tests use these to get a model of any
// Llama-family shape, dense or mixture-of-experts, without downloading one.
// The directory written is an ordinary HF checkpoint (config.json,
// generation_config.json, safetensors shards with an index when there is more
// than one, tokenizer.json and tokenizer_config.json), so everything that
// loads real models loads it.
//
// Values follow the recipe of the golden fixtures (../shared/fixtures README)
// with uniform instead of normal draws, which are far cheaper and have the
// same mean and std: 2-D weights [out, in] (experts' and routers' included)
// have std 1/sqrt(in), RMSNorm weights 1 + 0.1·u, biases 0.1·u. They depend
// only on the seed and the tensor's name, never on the thread count or the
// chunking.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/dtype.h"
#include "strata/model_config.h"

namespace strata {

// The shape and settings of a synthetic model.
struct SynthSpec {
  // Any of synth_architecture_names()'s: "LlamaForCausalLM", "Qwen2ForCausalLM",
  // "MixtralForCausalLM", "Qwen3MoeForCausalLM", ...
  std::string architecture = "LlamaForCausalLM";
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  // 0: same as num_heads
  int64_t head_dim = 0;      // 0: hidden_size / num_heads
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  std::optional<RopeScalingLlama3> rope_llama3;
  bool tie_word_embeddings = false;
  // The mixture of experts of Mixtral, Qwen2-MoE and Qwen3-MoE (all 0 for a
  // dense architecture). Mixtral's experts are intermediate_size wide, so it
  // leaves moe_intermediate_size 0; the Qwen families' experts are
  // moe_intermediate_size wide and intermediate_size is the width of their
  // dense layers (see decoder_sparse_step and mlp_only_layers).
  int64_t num_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  int64_t shared_expert_intermediate_size = 0;  // Qwen2-MoE's shared expert (it always has one)
  bool norm_topk_prob = true;  // Qwen only: renormalize the top-k weights (Mixtral always does)
  // Qwen only: layer i is sparse when (i + 1) % decoder_sparse_step == 0 and
  // i is not in mlp_only_layers.
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
  DType dtype = DType::BF16;  // F32, F16 or BF16
  // Most tensor bytes per safetensors file (as transformers' max_shard_size
  // counts them: data only, not the header). A tensor larger than this gets a
  // file of its own.
  uint64_t shard_size = 2'000'000'000;
  uint64_t seed = 0;

  // num_kv_heads and head_dim with their defaults applied.
  int64_t kv_heads() const { return num_kv_heads > 0 ? num_kv_heads : num_heads; }
  int64_t resolved_head_dim() const;
  // The config.json "model_type" of the architecture ("llama", "qwen2", "mixtral", "qwen3_moe", ...).
  std::string model_type() const;
  // Whether the architecture routes tokens through experts.
  bool moe() const;
};

// Named shapes of well-known models ("tinyllama-1.1b", "llama-3-8b",
// "llama-3.2-1b", "qwen2-0.5b", "qwen3-0.6b", "mixtral-8x7b", "qwen3-30b-a3b")
// and "tiny" for tests. Throws strata::Error listing the names for an unknown one.
SynthSpec synth_preset(std::string_view name);
const std::vector<std::string>& synth_preset_names();

// A short name (the config.json model_type: "llama", "qwen2", "qwen3",
// "mistral", "mixtral", "qwen2_moe", "qwen3_moe") → the HF architecture name;
// throws strata::Error otherwise.
std::string synth_architecture(std::string_view short_name);
const std::vector<std::string>& synth_architecture_names();

// Checks the spec (positive sizes, heads divisible by kv heads, even head_dim,
// a float dtype, a vocabulary large enough for the byte-level tokenizer,
// experts exactly where the architecture has them). Throws strata::Error
// naming the bad field.
void validate(const SynthSpec& spec);

// One tensor of the checkpoint, in the order it is written.
struct SynthTensor {
  std::string name;
  std::vector<int64_t> shape;
  int64_t numel = 0;
  uint64_t nbytes = 0;
  size_t shard = 0;  // which file it goes to
};

// Tensors with their shard assignment, in HF order: embed_tokens, each layer
// (norms, attention, MLP or router and experts), the final norm, lm_head unless tied.
struct SynthLayout {
  std::vector<SynthTensor> tensors;
  std::vector<std::string> shard_files;  // model.safetensors, or model-0000i-of-0000N.safetensors
  uint64_t data_bytes = 0;               // sum of tensor bytes ("total_size" of the index)
  int64_t params = 0;
};
SynthLayout synth_layout(const SynthSpec& spec);

struct SynthOptions {
  bool force = false;     // write into a non-empty directory (replacing its checkpoint files)
  unsigned threads = 0;   // generator threads; 0: one per core
  // Bytes generated per unit of work. Larger chunks mean fewer, larger writes.
  size_t chunk_bytes = size_t{32} << 20;
  // Called on the calling thread with the tensor bytes written so far and in
  // all: once with 0 when the weights start, then after each chunk.
  std::function<void(uint64_t written, uint64_t total)> progress;
};

struct SynthResult {
  std::filesystem::path dir;
  std::vector<std::filesystem::path> files;  // everything written
  int64_t params = 0;
  uint64_t data_bytes = 0;  // tensor bytes
  uint64_t file_bytes = 0;  // all files, headers and JSON included
  size_t shards = 0;
  double seconds = 0;  // wall time of the whole write
};

// Writes the checkpoint into dir (created if missing). Refuses a non-empty dir
// unless options.force, and a disk without room for it. config.json is
// written last, so an interrupted run never leaves a directory that looks
// complete. Throws strata::Error.
SynthResult write_synthetic_checkpoint(const SynthSpec& spec, const std::filesystem::path& dir,
                                       const SynthOptions& options = {});

// The value generator, exposed for tests: fills out[0, n) with the values of
// elements [begin, begin + n) of the named tensor, stored as dtype. begin must
// be a multiple of kSynthBlockElems (the unit of random streams).
inline constexpr int64_t kSynthBlockElems = int64_t{1} << 16;
void synth_fill(const SynthSpec& spec, const SynthTensor& tensor, int64_t begin, int64_t n, void* out);

}  // namespace strata
