// An architecture family, described once (DESIGN.md, "Architecture
// descriptions"): its torch module tree with roles on what the forward reads,
// its tied parameters, the class Accelerate never splits, and the settings
// that make the shared forward pass (models/decoder.cpp) compute what its
// modeling_*.py computes. One file per family (family_*.cpp) fills one in;
// everything else is derived here.
#pragma once

#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "backend/ops.h"
#include "format/safetensors.h"
#include "models/causal_lm.h"
#include "models/module_decl.h"
#include "plan/module_tree.h"
#include "strata/model_config.h"

namespace strata {

enum class NormKind {
  rms,           // weight * (x * rsqrt(mean(x^2) + eps))
  rms_plus_one,  // (1 + weight) * ...: Gemma's RMSNorm
  layer,         // torch LayerNorm with bias (GPT-2)
};

// How positions enter: rotary embeddings on queries and keys, or a learned
// table added to the token embeddings (a position_embedding block).
enum class Positions { rotary, learned };

// The numerics of the shared forward pass.
struct ForwardSettings {
  NormKind norm = NormKind::rms;
  Activation activation = Activation::silu;
  Positions positions = Positions::rotary;
  float embedding_scale = 1.0f;    // Gemma multiplies embeddings by sqrt(hidden)
  float attention_scale = 0.0f;    // 0: 1/sqrt(head_dim)
  float attention_softcap = 0.0f;  // 0: none (Gemma 2: attn_logit_softcapping)
  float final_softcap = 0.0f;      // 0: none (Gemma 2: final_logit_softcapping)
  std::vector<int> window;         // per layer: a query sees this many positions; 0: all
};

struct Description {
  ModuleDecl root;                  // the ...ForCausalLM / ...LMHeadModel module
  plan::TiedGroups tied;            // e.g. {{"lm_head.weight", "model.embed_tokens.weight"}}
  std::string no_split;             // the decoder layer class (_no_split_modules)
  ForwardSettings forward;
};

// A family's description of a model of this config; throws strata::Error for
// a setting it does not support.
using Describe = Description (*)(const ModelConfig&);

struct Architecture {
  std::string_view name;  // config.json "architectures"[0]
  Describe describe;
};

// Every architecture strata runs, and the one for config.architecture
// (throws strata::Error listing the others for an unknown one).
const std::vector<Architecture>& architectures();
const Architecture& architecture_of(const ModelConfig& config);
Description describe(const ModelConfig& config);

// The matrix weights in-situ quantization (--quantize) leaves as stored
// unless told to take them too: the token and position embeddings and the
// head (a lookup reads one row per token; the logits stay closer), and the
// routers and shared-expert gates (small, and they choose the experts).
std::unordered_set<std::string> kept_unquantized(const ModelConfig& config);

// The blocks of a description, in execution order, with their weights (a
// tied head reads the embedding's tensor); a routed expert's weights are not
// its layer's, they are experts_of's.
std::vector<BlockSpec> blocks_of(const Description& description);
std::vector<ExpertSpec> experts_of(const Description& description);

// The tensors a checkpoint of the model holds, in the order of torch's
// state_dict (registration order), as stored (Conv1D weights [in, out]); a
// tied parameter once, under the name the checkpoint keeps.
struct StoredTensor {
  std::string name;
  std::vector<int64_t> shape;
};
std::vector<StoredTensor> checkpoint_tensors(const Description& description);

// The dotted path of the decoder layers' container ("model.layers").
std::string layer_list_path(const Description& description);

// Throws strata::Error when config.json asks for more decoder layers than
// the checkpoint holds. Called before anything whose size grows with the
// layer count is built, so a wrong num_hidden_layers fails at once.
void check_layer_count(const ModelConfig& config, const Checkpoint& checkpoint);

}  // namespace strata
