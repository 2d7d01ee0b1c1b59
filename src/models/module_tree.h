// The torch module tree of a Llama-family checkpoint, built from its config,
// exactly as transformers 4.44 registers it (modeling_llama.py,
// modeling_mistral.py, modeling_qwen2.py): the same names, class names,
// registration order, shapes, dtypes and non-persistent buffers. Planning on
// this tree gives Accelerate's device maps for the real model without
// instantiating it, so a 400B model can be planned from config.json alone.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "plan/module_tree.h"
#include "strata/model_config.h"

namespace strata {

// torch_dtype_of(full parameter name) gives each parameter's torch dtype
// ("bfloat16", "float16", "float32"): the checkpoint header's dtype, or
// config.torch_dtype for every name. Buffers follow transformers instead:
// rotary `inv_freq` is always float32, and Qwen2's cos/sin caches take the
// dtype the model is built in, read as torch_dtype_of("model.embed_tokens.weight").
// With tie_word_embeddings, lm_head.weight is registered at both places and
// tree.tied is {{"lm_head.weight", "model.embed_tokens.weight"}}.
// Throws strata::Error for an architecture it does not know.
plan::ModuleTree module_tree_for(const ModelConfig& config,
                                 const std::function<std::string(const std::string& tensor_name)>& torch_dtype_of);

// The modules transformers never splits across devices (the model class's
// _no_split_modules): {"LlamaDecoderLayer"}, {"MistralDecoderLayer"},
// {"Qwen2DecoderLayer"}.
std::vector<std::string> no_split_classes_for(const ModelConfig& config);

}  // namespace strata
