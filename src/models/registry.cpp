// Maps config.json "architectures" to the family that implements it.
#include "models/causal_lm.h"
#include "strata/error.h"

namespace strata {

std::vector<BlockSpec> llama_family_blocks(const ModelConfig& config);
size_t llama_family_workspace_floats(const ModelConfig& config, const StepLimits& limits);
std::unique_ptr<CausalLM> create_llama_family(const ModelConfig& config, std::vector<BlockSpec> blocks,
                                              WeightSource& weights);

namespace {

bool is_llama_family(const ModelConfig& config) {
  return config.architecture == "LlamaForCausalLM" || config.architecture == "MistralForCausalLM" ||
         config.architecture == "Qwen2ForCausalLM";
}

}  // namespace

std::vector<BlockSpec> model_blocks(const ModelConfig& config) {
  if (is_llama_family(config)) return llama_family_blocks(config);
  throw Error("unsupported architecture " + config.architecture);
}

size_t workspace_floats(const ModelConfig& config, const StepLimits& limits) {
  if (is_llama_family(config)) return llama_family_workspace_floats(config, limits);
  throw Error("unsupported architecture " + config.architecture);
}

std::unique_ptr<CausalLM> create_model(const ModelConfig& config, std::vector<BlockSpec> blocks,
                                       WeightSource& weights) {
  if (is_llama_family(config)) return create_llama_family(config, std::move(blocks), weights);
  throw Error("unsupported architecture " + config.architecture);
}

}  // namespace strata
