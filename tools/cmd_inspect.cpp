// strata inspect: what a checkpoint holds, read from headers only.
#include <cstdio>
#include <map>
#include <memory>

#include "commands.h"
#include "core/byte_size.h"
#include "format/quantized_checkpoint.h"
#include "format/safetensors.h"
#include "strata/model_config.h"

namespace strata::cli {
namespace {

struct InspectArgs {
  std::string model_dir;
  bool tensors = true;
};

// The module a tensor belongs to, as device maps name them:
// model.layers.N, model.embed_tokens, model.norm, lm_head.
std::string module_of(const std::string& name) {
  const std::string layers = "model.layers.";
  if (name.rfind(layers, 0) == 0) {
    const size_t end = name.find('.', layers.size());
    return name.substr(0, end);
  }
  const size_t last = name.rfind('.');
  return last == std::string::npos ? name : name.substr(0, last);
}

void run_inspect(const InspectArgs& args) {
  const std::filesystem::path dir(args.model_dir);
  const ModelConfig c = ModelConfig::from_file(dir / "config.json");
  const Checkpoint checkpoint = Checkpoint::open(dir);

  std::printf("architecture   %s\n", c.architecture.c_str());
  std::printf("layers         %lld\n", static_cast<long long>(c.num_layers));
  std::printf("hidden         %lld (intermediate %lld)\n", static_cast<long long>(c.hidden_size),
              static_cast<long long>(c.intermediate_size));
  std::printf("heads          %lld query, %lld key/value, head_dim %lld\n", static_cast<long long>(c.num_heads),
              static_cast<long long>(c.num_kv_heads), static_cast<long long>(c.head_dim));
  std::printf("vocab          %lld%s\n", static_cast<long long>(c.vocab_size),
              c.tie_word_embeddings ? " (lm_head tied to embed_tokens)" : "");
  std::printf("rope           theta %g%s, max positions %lld\n", c.rope_theta, c.rope_llama3 ? ", llama3 scaling" : "",
              static_cast<long long>(c.max_position_embeddings));
  std::printf("norm_eps       %g\n", c.norm_eps);
  if (c.num_experts > 0) {
    int64_t sparse = 0;
    for (int64_t l = 0; l < c.num_layers; ++l) sparse += c.is_sparse_layer(l) ? 1 : 0;
    std::printf("experts        %lld per sparse layer (%lld of %lld layers), top-%lld%s, width %lld",
                static_cast<long long>(c.num_experts), static_cast<long long>(sparse),
                static_cast<long long>(c.num_layers), static_cast<long long>(c.num_experts_per_tok),
                c.norm_topk_prob ? " renormalized" : "", static_cast<long long>(c.moe_intermediate_size));
    if (c.shared_expert_intermediate_size > 0)
      std::printf(", shared expert %lld", static_cast<long long>(c.shared_expert_intermediate_size));
    std::printf("\n");
  }
  std::printf("files          %zu safetensors file(s)\n", checkpoint.files().size());
  if (const auto quant = read_quant_scheme(dir, checkpoint)) {
    size_t matrices = 0;
    for (const auto& t : checkpoint.tensors()) {
      // Each quantized matrix once: at the tensor that holds its codes.
      const bool codes = t.name.ends_with(".qweight") || t.name.ends_with(".weight_packed") || t.dtype == DType::F8_E4M3;
      if (codes && stored_quantized_matrix(checkpoint, *quant, t.name.substr(0, t.name.rfind('.')) + ".weight"))
        ++matrices;
    }
    std::printf("quantization   %s, %zu quantized matrices (held repacked, same bytes per weight)\n",
                quant->layout.name.c_str(), matrices);
  }

  std::map<std::string, uint64_t> per_dtype;
  std::vector<std::pair<std::string, uint64_t>> per_module;  // in first-seen order
  std::map<std::string, size_t> module_index;
  uint64_t total = 0, params = 0;
  if (args.tensors) std::printf("\n%-56s %-6s %-18s %12s\n", "tensor", "dtype", "shape", "bytes");
  for (const auto& t : checkpoint.tensors()) {
    if (args.tensors)
      std::printf("%-56s %-6s %-18s %12llu\n", t.name.c_str(), std::string(dtype_name(t.dtype)).c_str(),
                  shape_string(t.shape).c_str(), static_cast<unsigned long long>(t.nbytes));
    total += t.nbytes;
    params += static_cast<uint64_t>(t.numel());
    per_dtype[std::string(dtype_name(t.dtype))] += t.nbytes;
    const std::string module = module_of(t.name);
    auto [it, inserted] = module_index.emplace(module, per_module.size());
    if (inserted) per_module.emplace_back(module, 0);
    per_module[it->second].second += t.nbytes;
  }
  std::printf("\n%-40s %14s\n", "module", "bytes");
  for (const auto& [module, bytes] : per_module)
    std::printf("%-40s %14llu  %s\n", module.c_str(), static_cast<unsigned long long>(bytes),
                format_bytes(bytes, ByteUnits::decimal).c_str());
  std::printf("\ntotal          %llu parameters, %s", static_cast<unsigned long long>(params),
              format_bytes(total, ByteUnits::decimal).c_str());
  for (const auto& [dtype, bytes] : per_dtype)
    std::printf(" | %s %s", dtype.c_str(), format_bytes(bytes, ByteUnits::decimal).c_str());
  std::printf("\n");
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* cmd = app.add_subcommand("inspect", "Show a checkpoint's architecture, tensors and bytes per module (reads headers only)");
  cmd->add_option("-m,--model", args->model_dir, "Model folder")->required();
  cmd->add_flag("!--no-tensors", args->tensors, "Leave out the per-tensor table");
  cmd->callback([args] { run_inspect(*args); });
}

}  // namespace strata::cli
