// Maps config.json "architectures" to the family that implements it.
#include "models/causal_lm.h"
#include "strata/error.h"

namespace strata {

std::unique_ptr<CausalLM> create_llama_family(const ModelConfig& config, WeightSource& weights);

std::unique_ptr<CausalLM> create_model(const ModelConfig& config, WeightSource& weights) {
  if (config.architecture == "LlamaForCausalLM" || config.architecture == "MistralForCausalLM" ||
      config.architecture == "Qwen2ForCausalLM")
    return create_llama_family(config, weights);
  throw Error("unsupported architecture " + config.architecture);
}

}  // namespace strata
