#include "strata/model_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "strata/error.h"

namespace strata {
namespace {

using nlohmann::json;

std::string read_text(const std::filesystem::path& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + what, path.string(), "", "is this a Hugging Face model folder?");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

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

std::string architecture_of(const json& doc, const Fields& fields) {
  if (!fields.has("architectures")) fields.fail("missing field 'architectures'", "is this a causal LM config?");
  const json& list = doc.at("architectures");
  if (!list.is_array() || list.empty() || !list.front().is_string())
    fields.fail("'architectures' must be a non-empty list of names");
  const std::string name = list.front().get<std::string>();
  for (const auto& supported : supported_architectures())
    if (name == supported) return name;
  std::string known;
  for (const auto& supported : supported_architectures()) known += (known.empty() ? "" : ", ") + supported;
  fields.fail("unsupported architecture " + name, "strata runs " + known);
}

std::optional<RopeScalingLlama3> rope_scaling_of(const json& doc, const Fields& fields) {
  if (!fields.has("rope_scaling")) return std::nullopt;
  const json& scaling = doc.at("rope_scaling");
  if (!scaling.is_object()) fields.fail("'rope_scaling' must be an object or null");
  const Fields sub(scaling, "");
  std::string type = sub.string_or("rope_type", sub.string_or("type", ""));
  if (type == "default") return std::nullopt;
  if (type != "llama3")
    fields.fail("unsupported rope_scaling type '" + type + "'", "strata supports rope_scaling of type llama3");
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
  return out;
}

}  // namespace

const std::vector<std::string>& supported_architectures() {
  static const std::vector<std::string> names{"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"};
  return names;
}

ModelConfig ModelConfig::from_file(const std::filesystem::path& config_json) {
  return from_json_text(read_text(config_json, "config.json"), config_json.string());
}

ModelConfig ModelConfig::from_json_text(const std::string& text, const std::string& origin) {
  const json doc = parse_object(text, origin);
  const Fields f(doc, origin);
  ModelConfig c;
  c.architecture = architecture_of(doc, f);
  c.model_type = f.string_or("model_type", "");
  c.hidden_size = f.positive_int("hidden_size");
  c.intermediate_size = f.positive_int("intermediate_size");
  c.num_layers = f.positive_int("num_hidden_layers");
  c.num_heads = f.positive_int("num_attention_heads");
  c.num_kv_heads = f.positive_int_or("num_key_value_heads", c.num_heads);
  c.head_dim = f.positive_int_or("head_dim", c.hidden_size / c.num_heads);
  c.vocab_size = f.positive_int("vocab_size");
  c.max_position_embeddings = f.positive_int_or("max_position_embeddings", 2048);
  c.rms_norm_eps = f.positive_number_or("rms_norm_eps", 1e-6);
  c.rope_theta = f.positive_number_or("rope_theta", 10000.0);
  c.rope_llama3 = rope_scaling_of(doc, f);
  c.tie_word_embeddings = f.boolean_or("tie_word_embeddings", false);
  c.attention_bias = f.boolean_or("attention_bias", false);
  c.mlp_bias = f.boolean_or("mlp_bias", false);
  c.qkv_bias = c.architecture == "Qwen2ForCausalLM";
  c.torch_dtype = f.string_or("torch_dtype", "");
  // Mistral always slides; Qwen2 only with use_sliding_window (and then only
  // on some layers, which strata does not model: refuse it).
  if (c.architecture == "MistralForCausalLM" && f.has("sliding_window"))
    c.sliding_window = f.positive_int("sliding_window");
  if (c.architecture == "Qwen2ForCausalLM" && f.boolean_or("use_sliding_window", false))
    f.fail("Qwen2 with use_sliding_window=true is not supported");
  c.bos_token_id = f.token_id("bos_token_id");
  c.eos_token_ids = f.token_ids("eos_token_id");

  const std::string act = f.string_or("hidden_act", "silu");
  if (act != "silu") f.fail("unsupported hidden_act '" + act + "'", "the Llama family uses silu");
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
  const json doc = parse_object(read_text(path, "generation_config.json"), path.string());
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
