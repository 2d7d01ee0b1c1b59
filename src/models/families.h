// The families strata runs: one description function each, in its own
// family_*.cpp (the architectures() table in architecture.cpp lists them).
#pragma once

#include "models/architecture.h"

namespace strata {

Description describe_llama(const ModelConfig& config);  // Llama, Mistral, Qwen2
Description describe_qwen3(const ModelConfig& config);
Description describe_gemma(const ModelConfig& config);
Description describe_gemma2(const ModelConfig& config);
Description describe_phi3(const ModelConfig& config);
Description describe_gpt2(const ModelConfig& config);
Description describe_mixtral(const ModelConfig& config);
Description describe_qwen2_moe(const ModelConfig& config);
Description describe_qwen3_moe(const ModelConfig& config);

}  // namespace strata
