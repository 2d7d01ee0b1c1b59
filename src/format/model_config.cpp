#include "strata/model_config.h"

#include <nlohmann/json.hpp>

#include "core/files.h"
#include "strata/error.h"

namespace strata {
namespace {

using nlohmann::json;

constexpr const char* kModelFolderHint = "is this a Hugging Face model folder?";

json parse_object(const std::string& text, const std::string& origin) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(std::string("malformed JSON: ") + e.what(), origin, "", "truncated or hand-edited file?");
  }
  if (!doc.is_object()) throw Error("expected a JSON object at the top level", origin);
  return doc;
}

// Field readers: each names the field and the file when the value is wrong.
class Fields {
 public:
  Fields(const json& doc, std::string origin) : doc_(doc), origin_(std::move(origin)) {}

  bool has(const char* key) const { return doc_.contains(key) && !doc_.at(key).is_null(); }

  int64_t positive_int(const char* key) const {
    const json& v = require(key);
    if (!v.is_number_integer() || v.get<int64_t>() <= 0)
      throw Error(std::string("'") + key + "' must be a positive integer, got " + v.dump(), origin_);
    return v.get<int64_t>();
  }
  int64_t positive_int_or(const char* key, int64_t fallback) const {
    return has(key) ? positive_int(key) : fallback;
  }
  double positive_number_or(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    const json& v = doc_.at(key);
    if (!v.is_number() || v.get<double>() <= 0)
      throw Error(std::string("'") + key + "' must be a positive number, got " + v.dump(), origin_);
    return v.get<double>();
  }
  bool boolean_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = doc_.at(key);
    if (!v.is_boolean()) throw Error(std::string("'") + key + "' must be true or false, got " + v.dump(), origin_);
    return v.get<bool>();
  }
  std::string string_or(const char* key, std::string fallback) const {
    if (!has(key)) return fallback;
    const json& v = doc_.at(key);
    if (!v.is_string()) throw Error(std::string("'") + key + "' must be a string, got " + v.dump(), origin_);
    return v.get<std::string>();
  }
  std::optional<int32_t> token_id(const char* key) const {
    if (!has(key)) return std::nullopt;
    const json& v = doc_.at(key);
    if (v.is_array()) {
      if (v.empty()) return std::nullopt;
      return token_value(key, v.front());
    }
    return token_value(key, v);
  }
  std::vector<int32_t> token_ids(const char* key) const {
    std::vector<int32_t> ids;
    if (!has(key)) return ids;
    const json& v = doc_.at(key);
    if (v.is_array()) {
      for (const json& item : v) ids.push_back(token_value(key, item));
    } else {
      ids.push_back(token_value(key, v));
    }
    return ids;
  }
  [[noreturn]] void fail(const std::string& message, const std::string& hint = {}) const {
    throw Error(message, origin_, "", hint);
  }

 private:
  const json& require(const char* key) const {
    if (!has(key)) throw Error(std::string("missing field '") + key + "'", origin_);
    return doc_.at(key);
  }
  int32_t token_value(const char* key, const json& v) const {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
      throw Error(std::string("'") + key + "' must hold token ids, got " + v.dump(), origin_);
    return static_cast<int32_t>(v.get<int64_t>());
  }

  const json& doc_;
  std::string origin_;
};

// What a config class (transformers' configuration_*.py) calls the fields
// that differ between families, and its defaults for them.
struct ConfigClass {
  const char* architecture;
  bool tie_word_embeddings;     // the default when config.json leaves it out
  const char* activation_key;   // where the MLP's activation is named
  const char* activation_default;
  double norm_eps;
  int64_t head_dim;             // the default when left out; 0: hidden_size / heads
  bool gpt2_names;              // n_embd, n_layer, ... (GPT2Config.attribute_map)
};

const std::vector<ConfigClass>& config_classes() {
  // GemmaConfig reads hidden_activation and ignores hidden_act (modeling_gemma.py
  // falls back to gelu_pytorch_tanh when it is unset).
  static const std::vector<ConfigClass> classes{
      {"LlamaForCausalLM", false, "hidden_act", "silu", 1e-6, 0, false},
      {"MistralForCausalLM", false, "hidden_act", "silu", 1e-6, 0, false},
      {"Qwen2ForCausalLM", false, "hidden_act", "silu", 1e-6, 0, false},
      {"Qwen3ForCausalLM", false, "hidden_act", "silu", 1e-6, 128, false},
      {"GemmaForCausalLM", true, "hidden_activation", "gelu_pytorch_tanh", 1e-6, 256, false},
      {"Gemma2ForCausalLM", true, "hidden_activation", "gelu_pytorch_tanh", 1e-6, 256, false},
      {"Phi3ForCausalLM", false, "hidden_act", "silu", 1e-5, 0, false},
      {"GPT2LMHeadModel", true, "activation_function", "gelu_new", 1e-5, 0, true},
      {"MixtralForCausalLM", false, "hidden_act", "silu", 1e-5, 0, false},
      {"Qwen2MoeForCausalLM", false, "hidden_act", "silu", 1e-6, 0, false},
      {"Qwen3MoeForCausalLM", false, "hidden_act", "silu", 1e-6, 0, false},
  };
  return classes;
}

const ConfigClass& config_class_of(const json& doc, const Fields& fields) {
  if (!fields.has("architectures")) fields.fail("missing field 'architectures'", "is this a causal LM config?");
  const json& list = doc.at("architectures");
  if (!list.is_array() || list.empty() || !list.front().is_string())
    fields.fail("'architectures' must be a non-empty list of names");
  const std::string name = list.front().get<std::string>();
  for (const ConfigClass& c : config_classes())
    if (name == c.architecture) return c;
  std::string known;
  for (const auto& supported : supported_architectures()) known += (known.empty() ? "" : ", ") + supported;
  fields.fail("unsupported architecture " + name, "strata runs " + known);
}

std::vector<double> number_list(const json& doc, const char* key, size_t size, const Fields& fields) {
  const std::string what = std::string("rope_scaling: '") + key + "'";
  if (!doc.contains(key) || !doc.at(key).is_array()) fields.fail(what + " must be a list of numbers");
  std::vector<double> out;
  for (const json& v : doc.at(key)) {
    if (!v.is_number() || v.get<double>() <= 0) fields.fail(what + " must hold positive numbers");
    out.push_back(v.get<double>());
  }
  if (out.size() != size)
    fields.fail(what + " has " + std::to_string(out.size()) + " values; head_dim / 2 is " + std::to_string(size));
  return out;
}

// rope_scaling: none, llama3 (Llama 3.1), or longrope/su (Phi-3).
void read_rope_scaling(const json& doc, const Fields& fields, ModelConfig& c) {
  if (!fields.has("rope_scaling")) return;
  const json& scaling = doc.at("rope_scaling");
  if (!scaling.is_object()) fields.fail("'rope_scaling' must be an object or null");
  const Fields sub(scaling, "");
  std::string type = sub.string_or("rope_type", sub.string_or("type", ""));
  if (type == "default") return;
  if (type == "longrope" || type == "su") {
    RopeScalingLongrope out;
    const size_t half = static_cast<size_t>(c.head_dim / 2);
    out.short_factor = number_list(scaling, "short_factor", half, fields);
    out.long_factor = number_list(scaling, "long_factor", half, fields);
    out.original_max_position_embeddings = static_cast<double>(
        fields.positive_int_or("original_max_position_embeddings", c.max_position_embeddings));
    if (sub.has("attention_factor")) out.attention_factor = sub.positive_number_or("attention_factor", 1.0);
    c.rope_longrope = std::move(out);
    return;
  }
  if (type != "llama3")
    fields.fail("unsupported rope_scaling type '" + type + "'", "strata supports llama3, longrope and su");
  RopeScalingLlama3 out;
  try {
    out.factor = sub.positive_number_or("factor", out.factor);
    out.low_freq_factor = sub.positive_number_or("low_freq_factor", out.low_freq_factor);
    out.high_freq_factor = sub.positive_number_or("high_freq_factor", out.high_freq_factor);
    out.original_max_position_embeddings =
        sub.positive_number_or("original_max_position_embeddings", out.original_max_position_embeddings);
  } catch (const Error& e) {
    fields.fail("rope_scaling: " + e.message());
  }
  if (out.high_freq_factor <= out.low_freq_factor)
    fields.fail("rope_scaling: high_freq_factor must exceed low_freq_factor");
  c.rope_llama3 = out;
}

// The experts of a mixture-of-experts config, with its config class's
// defaults (configuration_mixtral.py, configuration_qwen2_moe.py,
// configuration_qwen3_moe.py).
void read_experts(const json& doc, const Fields& f, ModelConfig& c) {
  if (c.architecture == "MixtralForCausalLM") {
    // Every Mixtral layer is sparse; its experts are intermediate_size wide
    // and always renormalize their top-k weights.
    c.num_experts = f.positive_int_or("num_local_experts", 8);
    c.num_experts_per_tok = f.positive_int_or("num_experts_per_tok", 2);
    c.moe_intermediate_size = c.intermediate_size;
    c.norm_topk_prob = true;
  } else if (c.architecture == "Qwen2MoeForCausalLM" || c.architecture == "Qwen3MoeForCausalLM") {
    const bool qwen2 = c.architecture == "Qwen2MoeForCausalLM";
    c.num_experts = f.positive_int_or("num_experts", qwen2 ? 60 : 128);
    c.num_experts_per_tok = f.positive_int_or("num_experts_per_tok", qwen2 ? 4 : 8);
    c.moe_intermediate_size = f.positive_int_or("moe_intermediate_size", qwen2 ? 1408 : 768);
    if (qwen2) c.shared_expert_intermediate_size = f.positive_int_or("shared_expert_intermediate_size", 5632);
    c.norm_topk_prob = f.boolean_or("norm_topk_prob", false);
    c.decoder_sparse_step = f.positive_int_or("decoder_sparse_step", 1);
    if (f.has("mlp_only_layers")) {
      const json& list = doc.at("mlp_only_layers");
      if (!list.is_array()) f.fail("'mlp_only_layers' must be a list of layer indices");
      for (const json& v : list) {
        if (!v.is_number_integer() || v.get<int64_t>() < 0)
          f.fail("'mlp_only_layers' must hold layer indices, got " + v.dump());
        c.mlp_only_layers.push_back(v.get<int64_t>());
      }
    }
  } else {
    return;
  }
  if (c.num_experts_per_tok > c.num_experts)
    f.fail("num_experts_per_tok (" + std::to_string(c.num_experts_per_tok) + ") exceeds the " +
           std::to_string(c.num_experts) + " experts", "the router picks that many experts of each sparse layer");
}

}  // namespace

bool ModelConfig::is_sparse_layer(int64_t layer) const {
  if (num_experts == 0) return false;
  for (const int64_t dense : mlp_only_layers)
    if (dense == layer) return false;
  return (layer + 1) % decoder_sparse_step == 0;
}

const std::vector<std::string>& supported_architectures() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const ConfigClass& c : config_classes()) out.push_back(c.architecture);
    return out;
  }();
  return names;
}

ModelConfig ModelConfig::from_file(const std::filesystem::path& config_json) {
  return from_json_text(read_file(config_json, "config.json", kModelFolderHint), config_json.string());
}

ModelConfig ModelConfig::from_json_text(const std::string& text, const std::string& origin) {
  const json doc = parse_object(text, origin);
  const Fields f(doc, origin);
  const ConfigClass& cls = config_class_of(doc, f);
  ModelConfig c;
  c.architecture = cls.architecture;
  c.model_type = f.string_or("model_type", "");
  const bool gpt2 = cls.gpt2_names;
  c.hidden_size = f.positive_int(gpt2 ? "n_embd" : "hidden_size");
  c.num_layers = f.positive_int(gpt2 ? "n_layer" : "num_hidden_layers");
  // Far beyond any model; it keeps a mistyped count from building a tree
  // of a billion layers before anything else can notice.
  constexpr int64_t kMaxLayers = int64_t{1} << 16;
  if (c.num_layers > kMaxLayers)
    f.fail("'" + std::string(gpt2 ? "n_layer" : "num_hidden_layers") + "' is " + std::to_string(c.num_layers) +
           ", more than any model has (at most " + std::to_string(kMaxLayers) + ")");
  c.num_heads = f.positive_int(gpt2 ? "n_head" : "num_attention_heads");
  // GPT-2's inner size defaults to 4 * n_embd (n_inner null).
  c.intermediate_size = gpt2 ? f.positive_int_or("n_inner", 4 * c.hidden_size) : f.positive_int("intermediate_size");
  c.num_kv_heads = f.positive_int_or("num_key_value_heads", c.num_heads);
  c.head_dim = f.positive_int_or("head_dim", cls.head_dim > 0 ? cls.head_dim : c.hidden_size / c.num_heads);
  c.vocab_size = f.positive_int("vocab_size");
  c.max_position_embeddings = f.positive_int_or(gpt2 ? "n_positions" : "max_position_embeddings", 2048);
  c.norm_eps = f.positive_number_or(gpt2 ? "layer_norm_epsilon" : "rms_norm_eps", cls.norm_eps);
  c.hidden_act = f.string_or(cls.activation_key, cls.activation_default);
  c.rope_theta = f.positive_number_or("rope_theta", 10000.0);
  read_rope_scaling(doc, f, c);
  c.tie_word_embeddings = f.boolean_or("tie_word_embeddings", cls.tie_word_embeddings);
  c.attention_bias = f.boolean_or("attention_bias", false);
  c.mlp_bias = f.boolean_or("mlp_bias", false);
  c.qkv_bias = c.architecture == "Qwen2ForCausalLM" || c.architecture == "Qwen2MoeForCausalLM";
  c.torch_dtype = f.string_or("torch_dtype", "");
  // Mistral and Gemma 2 slide (Gemma 2 on every other layer), and so does
  // Qwen3 when sliding_window is set (its mask ignores use_sliding_window).
  // use_sliding_window asks for windows on some layers only, which strata
  // does not model: refuse it.
  if ((c.architecture == "MistralForCausalLM" || c.architecture == "MixtralForCausalLM" ||
       c.architecture == "Gemma2ForCausalLM" || c.architecture == "Qwen3ForCausalLM") &&
      f.has("sliding_window"))
    c.sliding_window = f.positive_int("sliding_window");
  if (f.boolean_or("use_sliding_window", false)) f.fail("use_sliding_window=true is not supported");
  if (c.architecture == "Gemma2ForCausalLM") {
    // Gemma2Config's defaults; an explicit null turns a cap off.
    c.query_pre_attn_scalar = f.positive_number_or("query_pre_attn_scalar", 224);
    c.attn_logit_softcapping = doc.contains("attn_logit_softcapping") ? f.positive_number_or("attn_logit_softcapping", 0) : 50;
    c.final_logit_softcapping =
        doc.contains("final_logit_softcapping") ? f.positive_number_or("final_logit_softcapping", 0) : 30;
    if (!f.has("sliding_window")) c.sliding_window = 4096;
  }
  if (gpt2) {
    // Variants of GPT-2's attention that strata does not compute.
    if (!f.boolean_or("scale_attn_weights", true)) f.fail("scale_attn_weights=false is not supported");
    if (f.boolean_or("scale_attn_by_inverse_layer_idx", false))
      f.fail("scale_attn_by_inverse_layer_idx=true is not supported");
    if (f.boolean_or("reorder_and_upcast_attn", false)) f.fail("reorder_and_upcast_attn=true is not supported");
  }
  read_experts(doc, f, c);
  c.bos_token_id = f.token_id("bos_token_id");
  c.eos_token_ids = f.token_ids("eos_token_id");

  if (c.num_heads % c.num_kv_heads != 0)
    f.fail("num_attention_heads (" + std::to_string(c.num_heads) + ") is not a multiple of num_key_value_heads (" +
           std::to_string(c.num_kv_heads) + ")");
  if (c.head_dim % 2 != 0) f.fail("head_dim must be even for rotary embeddings, got " + std::to_string(c.head_dim));
  return c;
}

GenerationConfig GenerationConfig::from_dir(const std::filesystem::path& dir) {
  GenerationConfig g;
  const auto path = dir / "generation_config.json";
  if (!std::filesystem::exists(path)) return g;
  const json doc = parse_object(read_file(path, "generation_config.json", kModelFolderHint), path.string());
  const Fields f(doc, path.string());
  g.bos_token_id = f.token_id("bos_token_id");
  g.eos_token_ids = f.token_ids("eos_token_id");
  g.do_sample = f.boolean_or("do_sample", false);
  if (f.has("temperature")) g.temperature = f.positive_number_or("temperature", 1.0);
  if (f.has("top_k")) {
    const json& v = doc.at("top_k");
    if (!v.is_number_integer() || v.get<int64_t>() < 0) f.fail("'top_k' must be a non-negative integer");
    g.top_k = v.get<int64_t>();
  }
  if (f.has("top_p")) g.top_p = f.positive_number_or("top_p", 1.0);
  if (f.has("max_new_tokens")) g.max_new_tokens = f.positive_int("max_new_tokens");
  return g;
}

}  // namespace strata
