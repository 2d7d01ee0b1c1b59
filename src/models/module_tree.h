// The torch module tree of a checkpoint, built from its config exactly as
// transformers registers it (the family's description, models/family_*.cpp):
// the same names, class names, registration order, shapes, dtypes and
// non-persistent buffers. Planning on this tree gives Accelerate's device
// maps for the real model without instantiating it, so a 400B model can be
// planned from config.json alone.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "models/module_decl.h"
#include "plan/module_tree.h"
#include "strata/model_config.h"

namespace strata {

// torch_dtype_of(full parameter name) gives each parameter's torch dtype
// ("bfloat16", "float16", "float32"): the checkpoint header's dtype, or
// config.torch_dtype for every name. Buffers follow transformers instead:
// rotary `inv_freq` is always float32, and tables built at construction
// (Qwen2's cos/sin caches) take the dtype the model is built in, read as the
// embedding's. A tied head's weight is registered at both places, with the
// stored tensor's dtype, and tree.tied lists the pair. Throws strata::Error
// for an architecture it does not know. quantized_of names the matrices held
// in a quantized layout, which count their held bytes.
plan::ModuleTree module_tree_for(const ModelConfig& config,
                                 const std::function<std::string(const std::string& tensor_name)>& torch_dtype_of,
                                 const QuantizedOf& quantized_of = {});

// The modules transformers never splits across devices (the model class's
// _no_split_modules): the family's decoder layer, e.g. {"LlamaDecoderLayer"}.
std::vector<std::string> no_split_classes_for(const ModelConfig& config);

}  // namespace strata
