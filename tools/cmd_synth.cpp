// strata synth: write a random-weight Hugging Face checkpoint of any
// Llama-family shape, dense or mixture-of-experts, for benchmarks and tests
// that need a model of a given size without downloading one. The work is in
// src/synth/synth_checkpoint.cpp.

#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "cli_util.h"
#include "commands.h"
#include "core/byte_size.h"
#include "progress_line.h"
#include "synth/synth_checkpoint.h"
#include "strata/error.h"

namespace strata::cli {
namespace {

struct SynthArgs {
  std::string output;
  std::string like;
  std::string arch;
  int64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, intermediate = 0, vocab = 0, head_dim = 0;
  int64_t max_position = 0;
  int64_t experts = 0, experts_per_token = 0, moe_intermediate = 0, shared_expert_intermediate = 0;
  double rope_theta = 0;
  std::string dtype = "bf16";
  std::string shard_size = "2GB";
  uint64_t seed = 0;
  bool tie = false;
  bool force = false;
  unsigned threads = 0;
  // Which of the optional flags were given, so they override a preset.
  CLI::Option* tie_flag = nullptr;
  std::map<std::string, CLI::Option*> shape_flags;
};

DType parse_dtype_flag(const std::string& text) {
  if (text == "bf16" || text == "bfloat16") return DType::BF16;
  if (text == "f16" || text == "fp16" || text == "float16") return DType::F16;
  if (text == "f32" || text == "fp32" || text == "float32") return DType::F32;
  throw Error("unknown dtype '" + text + "'", "", "", "use bf16, f16 or f32");
}

// The spec from a preset (if any) with each given flag applied on top.
SynthSpec build_spec(const SynthArgs& a) {
  const auto given = [&a](const char* flag) { return a.shape_flags.at(flag)->count() > 0; };
  SynthSpec spec;
  if (!a.like.empty()) {
    spec = synth_preset(a.like);
  } else {
    std::string missing;
    for (const char* flag : {"--hidden", "--layers", "--heads", "--intermediate", "--vocab"})
      if (!given(flag)) missing += std::string(missing.empty() ? "" : ", ") + flag;
    if (!missing.empty())
      throw Error("no model shape: give --like NAME, or the shape flags (missing " + missing + ")", "", "",
                  "e.g. --like tinyllama-1.1b, or --hidden 64 --layers 2 --heads 4 --intermediate 176 --vocab 512");
  }
  if (!a.arch.empty()) spec.architecture = synth_architecture(a.arch);
  if (given("--hidden")) spec.hidden_size = a.hidden;
  if (given("--layers")) spec.num_layers = a.layers;
  if (given("--heads")) spec.num_heads = a.heads;
  if (given("--kv-heads")) spec.num_kv_heads = a.kv_heads;
  if (given("--intermediate")) spec.intermediate_size = a.intermediate;
  if (given("--vocab")) spec.vocab_size = a.vocab;
  if (given("--head-dim")) spec.head_dim = a.head_dim;
  if (given("--max-position")) spec.max_position_embeddings = a.max_position;
  if (given("--rope-theta")) spec.rope_theta = a.rope_theta;
  if (given("--experts")) spec.num_experts = a.experts;
  if (given("--experts-per-token")) spec.num_experts_per_tok = a.experts_per_token;
  if (given("--moe-intermediate")) spec.moe_intermediate_size = a.moe_intermediate;
  if (given("--shared-expert-intermediate")) spec.shared_expert_intermediate_size = a.shared_expert_intermediate;
  if (a.tie_flag->count() > 0) spec.tie_word_embeddings = a.tie;
  spec.dtype = parse_dtype_flag(a.dtype);
  spec.shard_size = parse_byte_size(a.shard_size);
  spec.seed = a.seed;
  return spec;
}

void run_synth(const SynthArgs& args) {
  const SynthSpec spec = build_spec(args);
  const SynthLayout layout = synth_layout(spec);  // validates before anything is touched

  SynthOptions options;
  options.force = args.force;
  options.threads = args.threads;
  options.progress = progress_callback("writing weights");

  const SynthResult r = write_synthetic_checkpoint(spec, args.output, options);
  const double rate = r.seconds > 0 ? static_cast<double>(r.file_bytes) / r.seconds : 0;
  const double params = static_cast<double>(r.params);
  char params_text[32];
  std::snprintf(params_text, sizeof params_text, params >= 1e9 ? "%.2f B" : "%.2f M",
                params >= 1e9 ? params / 1e9 : params / 1e6);
  std::printf("wrote %s: %s, %s params, %s, %s in %zu safetensors file(s) + config and tokenizer, "
              "%.2f s (%s/s)\n",
              r.dir.string().c_str(), spec.architecture.c_str(), params_text,
              std::string(dtype_name(spec.dtype)).c_str(), format_bytes(r.file_bytes, ByteUnits::decimal).c_str(),
              r.shards, r.seconds, format_bytes(static_cast<uint64_t>(rate), ByteUnits::decimal).c_str());
}

}  // namespace

void add_synth_command(CLI::App& app) {
  auto args = std::make_shared<SynthArgs>();
  std::string presets;
  for (const auto& n : synth_preset_names()) presets += (presets.empty() ? "" : ", ") + n;
  CLI::App* cmd = app.add_subcommand(
      "synth",
      "Write a random-weight Hugging Face checkpoint (config.json, safetensors, tokenizer.json) of a given "
      "Llama-family, Qwen3 or mixture-of-experts (Mixtral, Qwen-MoE) shape (its tensors are those the family's "
      "description declares). Give --like NAME for a known shape, or all of --hidden --layers --heads "
      "--intermediate --vocab (plus --experts --experts-per-token for a mixture of experts, --moe-intermediate "
      "for Qwen-MoE and --shared-expert-intermediate for Qwen2-MoE); any shape flag overrides the preset's "
      "value. Weights are uniform with the std of N(0,1)/sqrt(fan_in), experts' and routers' included (norms "
      "1+0.1u, biases 0.1u), and depend only on --seed.");
  cmd->add_option("-o,--output", args->output, "Directory to write (created if missing)")->required();
  cmd->add_option("--like", args->like, "Start from a preset shape: " + presets);
  cmd->add_option("--arch", args->arch,
                  "Architecture: llama (LlamaForCausalLM), qwen2 (adds q/k/v biases), qwen3 (per-head q/k norms), "
                  "mistral; with experts in every layer: mixtral (Mistral's attention, experts --intermediate wide), "
                  "qwen2_moe (Qwen2's, plus a shared expert every token runs), qwen3_moe (Qwen3's). Qwen-MoE "
                  "top-k weights are renormalized (norm_topk_prob true, as Qwen3-MoE's checkpoints; Mixtral always)")
      ->check(CLI::IsMember(synth_architecture_names()));
  const auto shape = [&](const char* flag, int64_t& target, const char* help) {
    args->shape_flags[flag] = cmd->add_option(flag, target, help)->check(CLI::PositiveNumber);
  };
  shape("--hidden", args->hidden, "hidden_size H");
  shape("--layers", args->layers, "num_hidden_layers L");
  shape("--heads", args->heads, "num_attention_heads A");
  shape("--kv-heads", args->kv_heads, "num_key_value_heads K (default: A); A must be a multiple of K");
  shape("--intermediate", args->intermediate,
        "intermediate_size I of the MLP (Mixtral: each expert's width; Qwen-MoE: the dense layers', if any)");
  shape("--vocab", args->vocab, "vocab_size V; at least 259 (3 special + 256 byte tokens)");
  shape("--head-dim", args->head_dim, "head_dim D (default: H / A); must be even");
  shape("--max-position", args->max_position, "max_position_embeddings (default: the preset's, else 2048)");
  shape("--experts", args->experts,
        "Experts per MoE layer E (num_local_experts for Mixtral, num_experts for Qwen-MoE); only with mixtral, "
        "qwen2_moe or qwen3_moe");
  shape("--experts-per-token", args->experts_per_token,
        "Experts the router picks for each token (num_experts_per_tok, its top-k), at most E");
  shape("--moe-intermediate", args->moe_intermediate,
        "moe_intermediate_size W, each expert's width (Qwen-MoE; Mixtral's experts are --intermediate wide)");
  shape("--shared-expert-intermediate", args->shared_expert_intermediate,
        "shared_expert_intermediate_size S, the width of Qwen2-MoE's shared expert");
  args->shape_flags["--rope-theta"] =
      cmd->add_option("--rope-theta", args->rope_theta, "rope_theta (default: the preset's, else 10000)")
          ->check(CLI::PositiveNumber);
  cmd->add_option("--dtype", args->dtype, "Weight dtype: bf16, f16 or f32")
      ->capture_default_str()
      ->check(CLI::IsMember({"bf16", "f16", "f32"}));
  cmd->add_option("--shard-size", args->shard_size,
                  "Most tensor bytes per safetensors file, e.g. 500MB, 2GB, 1GiB (GiB/MiB/KiB are powers of 2, "
                  "GB/MB/KB of 10). Bigger models are split into model-0000i-of-0000N.safetensors plus "
                  "model.safetensors.index.json")
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "Random seed; the same seed gives the same bytes")->capture_default_str();
  args->tie_flag = cmd->add_flag("--tie,!--untie", args->tie,
                                 "--tie: lm_head shares embed_tokens (no lm_head.weight, tie_word_embeddings); "
                                 "--untie: a separate lm_head. Default: the preset's choice, else untied");
  cmd->add_flag("--force", args->force,
                "Write into a non-empty directory, replacing its config, tokenizer and *.safetensors files");
  cmd->add_option("--threads", args->threads, "Generator threads (default: one per core)");
  cmd->callback([args] { run_synth(*args); });
}

}  // namespace strata::cli
