// Builds the broken-checkpoint gallery (see broken_checkpoints.h). Valid files
// are written with the library's own writer; damaged ones are written byte by
// byte here, so each case holds exactly one defect.
#include "unit/broken_checkpoints.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>

#include "format/safetensors.h"

namespace strata::test {
namespace {

namespace fs = std::filesystem;

struct TinyTensor {
  std::string name;
  std::vector<int64_t> shape;
};

// The parameters of the tiny Llama, in name order as transformers saves them.
std::vector<TinyTensor> tiny_llama_tensors() {
  const std::string l = "model.layers.0.";
  return {
      {"lm_head.weight", {16, 8}},
      {"model.embed_tokens.weight", {16, 8}},
      {l + "input_layernorm.weight", {8}},
      {l + "mlp.down_proj.weight", {8, 16}},
      {l + "mlp.gate_proj.weight", {16, 8}},
      {l + "mlp.up_proj.weight", {16, 8}},
      {l + "post_attention_layernorm.weight", {8}},
      {l + "self_attn.k_proj.weight", {4, 8}},
      {l + "self_attn.o_proj.weight", {8, 8}},
      {l + "self_attn.q_proj.weight", {8, 8}},
      {l + "self_attn.v_proj.weight", {4, 8}},
      {"model.norm.weight", {8}},
  };
}

// Deterministic small values (norm weights 1), so files are reproducible.
std::vector<float> tiny_values(const TinyTensor& t, uint32_t& state) {
  size_t n = 1;
  for (int64_t d : t.shape) n *= static_cast<size_t>(d);
  const bool is_norm = t.name.find("norm") != std::string::npos;
  std::vector<float> values(n);
  for (float& v : values) {
    state = state * 1664525u + 1013904223u;  // Numerical Recipes LCG
    v = is_norm ? 1.0f : (static_cast<float>(state >> 8) / 16777216.0f - 0.5f) * 0.5f;
  }
  return values;
}

// Writes the named subset of the tiny Llama's tensors (all when names is empty).
void write_tiny_weights(const fs::path& path, const std::vector<std::string>& names = {}) {
  uint32_t state = 12345;
  std::vector<std::vector<float>> storage;
  std::vector<TensorToWrite> tensors;
  for (const TinyTensor& t : tiny_llama_tensors()) {
    std::vector<float> values = tiny_values(t, state);  // advance state for every tensor
    if (!names.empty() && std::find(names.begin(), names.end(), t.name) == names.end()) continue;
    storage.push_back(std::move(values));
    const auto& v = storage.back();
    tensors.push_back({t.name, DType::F32, t.shape,
                       {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)}});
  }
  write_safetensors(path, tensors, {{"format", "pt"}});
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// A safetensors file from raw parts: the length field (the header's true
// length unless overridden), the header text as given, and data bytes.
void write_raw(const fs::path& path, const std::string& header, size_t data_bytes,
               std::optional<uint64_t> length_field = std::nullopt) {
  std::string bytes(8, '\0');
  uint64_t n = length_field.value_or(header.size());
  for (size_t i = 0; i < 8; ++i, n >>= 8) bytes[i] = static_cast<char>(n & 0xff);
  bytes += header;
  bytes.append(data_bytes, '\x01');
  write_text(path, bytes);
}

// A header with one tensor entry given as raw JSON, e.g.
// R"("dtype":"F32","shape":[4],"data_offsets":[0,16])".
std::string one_tensor_header(const std::string& entry) {
  return R"({"model.norm.weight":{)" + entry + "}}";
}

void write_index(const fs::path& dir, const std::map<std::string, std::string>& weight_map) {
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}};
  write_text(dir / "model.safetensors.index.json", index.dump(2));
}

// The weight map of the valid two-shard layout: lm_head and embeddings in the
// first shard, everything else in the second.
std::map<std::string, std::string> tiny_weight_map() {
  std::map<std::string, std::string> map;
  for (const TinyTensor& t : tiny_llama_tensors())
    map[t.name] = (t.name == "lm_head.weight" || t.name == "model.embed_tokens.weight")
                      ? "model-00001-of-00002.safetensors"
                      : "model-00002-of-00002.safetensors";
  return map;
}

std::vector<std::string> shard_tensors(const std::string& shard) {
  std::vector<std::string> names;
  for (const auto& [tensor, file] : tiny_weight_map())
    if (file == shard) names.push_back(tensor);
  return names;
}

// Adds a case: makes root/name, puts a valid config.json in it, then lets
// damage() write the weights.
class Gallery {
 public:
  explicit Gallery(fs::path root) : root_(std::move(root)) {}

  void add(const std::string& name, const std::string& expected, const std::string& expected_file,
           const std::function<void(const fs::path&)>& damage,
           BrokenLevel level = BrokenLevel::weights) {
    const fs::path dir = root_ / name;
    fs::create_directories(dir);
    write_tiny_llama_config(dir);
    damage(dir);
    cases_.push_back({name, dir, expected, expected_file.empty() ? name : expected_file, level});
  }

  std::vector<BrokenCase> take() { return std::move(cases_); }

 private:
  fs::path root_;
  std::vector<BrokenCase> cases_;
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

uint64_t header_length(const fs::path& path) {
  const std::string bytes = read_text(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes.at(static_cast<size_t>(i)));
  return n;
}

// Damage to the framing of one file: its size and the length field.
void add_framing_cases(Gallery& g) {
  const std::string st = "model.safetensors";
  g.add("empty_file", "file is empty", st, [&](const fs::path& d) { write_text(d / st, ""); });
  g.add("short_file", "8-byte header length", st,
        [&](const fs::path& d) { write_text(d / st, std::string("\x10\0\0\0\0", 5)); });
  g.add("truncated_data", "truncated download?", st, [&](const fs::path& d) {
    // A valid file cut in the middle of its data area, as a broken download leaves it.
    write_tiny_weights(d / st);
    const uint64_t data_start = 8 + header_length(d / st);
    fs::resize_file(d / st, data_start + (fs::file_size(d / st) - data_start) / 2);
  });
  g.add("header_past_end", "runs past the end of the file", st, [&](const fs::path& d) {
    write_tiny_weights(d / st);
    std::string bytes = read_text(d / st);
    const uint64_t n = bytes.size() + 4096;  // plausible, but more than the file holds
    for (size_t i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    write_text(d / st, bytes);
  });
  g.add("header_length_absurd", "implausibly large", st, [&](const fs::path& d) {
    write_raw(d / st, "{}      ", 0, uint64_t{1} << 63);
  });
}

// Damage to the JSON header of one file.
void add_header_cases(Gallery& g) {
  const std::string st = "model.safetensors";
  const auto raw = [&](const std::string& header, size_t data_bytes) {
    return [=](const fs::path& d) { write_raw(d / st, header, data_bytes); };
  };
  g.add("malformed_json", "not valid JSON", st,
        raw(R"({"model.norm.weight": {"dtype": "F32", "shape": [8],)", 32));
  g.add("invalid_utf8", "not valid JSON", st,
        raw("{\"model.norm.\xff\xfe\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]}}", 32));
  g.add("header_not_object", "not a JSON object", st, raw("[1, 2, 3]", 0));
  g.add("entry_not_object", "not an object", st, raw(R"({"model.norm.weight": 7})", 0));
  g.add("missing_dtype", "\"dtype\"", st,
        raw(one_tensor_header(R"("shape":[8],"data_offsets":[0,32])"), 32));
  g.add("unknown_dtype", "unknown dtype \"F8_E5M2\"", st,
        raw(one_tensor_header(R"("dtype":"F8_E5M2","shape":[8],"data_offsets":[0,8])"), 8));
  g.add("negative_dim", "not a non-negative integer", st,
        raw(one_tensor_header(R"("dtype":"F32","shape":[-8],"data_offsets":[0,32])"), 32));
  g.add("fractional_offset", "\"data_offsets\" must be two non-negative integers", st,
        raw(one_tensor_header(R"("dtype":"F32","shape":[8],"data_offsets":[0.0,32])"), 32));
  g.add("huge_shape", "too many elements", st,
        raw(one_tensor_header(
                R"("dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,32])"),
            32));
  g.add("shape_bytes_mismatch", "needs 32 bytes but data_offsets span 16", st,
        raw(one_tensor_header(R"("dtype":"F32","shape":[8],"data_offsets":[0,16])"), 32));
  g.add("reversed_offsets", "reversed", st,
        raw(one_tensor_header(R"("dtype":"F32","shape":[8],"data_offsets":[32,0])"), 32));
  g.add("offsets_out_of_range", "run past the end of the data area", st,
        raw(one_tensor_header(R"("dtype":"F32","shape":[8],"data_offsets":[4096,4128])"), 32));
  g.add("overlapping_offsets", "overlaps tensor 'model.norm.weight'", st,
        raw(R"({"model.norm.weight":{"dtype":"F32","shape":[8],"data_offsets":[0,32]},)"
            R"("lm_head.weight":{"dtype":"F32","shape":[8],"data_offsets":[16,48]}})",
            48));
  g.add("duplicate_tensor", "duplicate key \"model.norm.weight\"", st,
        raw(R"({"model.norm.weight":{"dtype":"F32","shape":[8],"data_offsets":[0,32]},)"
            R"("model.norm.weight":{"dtype":"F32","shape":[8],"data_offsets":[32,64]}})",
            64));
  g.add("bad_metadata", "__metadata__", st,
        raw(R"({"__metadata__":{"format":1},)"
            R"("model.norm.weight":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}})",
            32));
}

// Damage to the directory: missing files, and a shard index that lies.
void add_directory_cases(Gallery& g) {
  const std::string shard1 = "model-00001-of-00002.safetensors";
  const std::string shard2 = "model-00002-of-00002.safetensors";
  const std::string index = "model.safetensors.index.json";
  g.add("no_weights", "no safetensors weights in", "no_weights", [](const fs::path&) {});
  g.add("several_files_no_index", "several .safetensors files", "several_files_no_index",
        [](const fs::path& d) {
          write_tiny_weights(d / "a.safetensors");
          write_tiny_weights(d / "b.safetensors");
        });
  g.add("missing_shard", "is missing", shard2, [&](const fs::path& d) {
    write_index(d, tiny_weight_map());
    write_tiny_weights(d / shard1, shard_tensors(shard1));
  });
  g.add("tensor_missing_from_shard", "is not in this shard", shard2, [&](const fs::path& d) {
    // The index promises a tensor the shard does not hold.
    std::map<std::string, std::string> map = tiny_weight_map();
    map["model.layers.0.self_attn.rotary_emb.inv_freq"] = shard2;
    write_index(d, map);
    write_tiny_weights(d / shard1, shard_tensors(shard1));
    write_tiny_weights(d / shard2, shard_tensors(shard2));
  });
  g.add("path_traversal", "not a plain file name", index, [&](const fs::path& d) {
    std::map<std::string, std::string> map = tiny_weight_map();
    map["model.norm.weight"] = "../" + shard2;
    write_index(d, map);
    write_tiny_weights(d / shard1, shard_tensors(shard1));
    write_tiny_weights(d / shard2, shard_tensors(shard2));
  });
  g.add("malformed_index", "index is not valid JSON", index, [&](const fs::path& d) {
    write_text(d / index, R"({"weight_map": {"lm_head.weight": )");
    write_tiny_weights(d / shard1, shard_tensors(shard1));
  });
  g.add("broken_shard", "truncated download?", shard1, [&](const fs::path& d) {
    // The index is fine; one shard is cut short.
    write_index(d, tiny_weight_map());
    write_tiny_weights(d / shard1, shard_tensors(shard1));
    write_tiny_weights(d / shard2, shard_tensors(shard2));
    fs::resize_file(d / shard1, fs::file_size(d / shard1) - 100);
  });
}

// Valid weights, broken model config: caught above the safetensors layer.
void add_config_cases(Gallery& g) {
  g.add(
      "malformed_config", "config.json", "config.json",
      [](const fs::path& d) {
        write_text(d / "config.json", R"({"architectures": ["LlamaForCausalLM"], "hidden_size": )");
        write_tiny_weights(d / "model.safetensors");
      },
      BrokenLevel::config);
  g.add(
      "unsupported_architecture", "FooForCausalLM", "config.json",
      [](const fs::path& d) {
        write_tiny_llama_config(d, "FooForCausalLM");
        write_tiny_weights(d / "model.safetensors");
      },
      BrokenLevel::config);
  // A layer count no model has fails at once (it used to build a billion
  // layers' plan first); one the weights do not hold fails before planning.
  const auto with_layers = [](int64_t layers) {
    return [layers](const fs::path& d) {
      write_tiny_llama_config(d);
      nlohmann::json config = nlohmann::json::parse(read_text(d / "config.json"));
      config["num_hidden_layers"] = layers;
      write_text(d / "config.json", config.dump());
      write_tiny_weights(d / "model.safetensors");
    };
  };
  g.add("billion_layers", "more than any model has", "config.json", with_layers(1'000'000'000), BrokenLevel::config);
  g.add("more_layers_than_weights", "asks for 1000 decoder layers, but the checkpoint holds 1", "more_layers_than_weights",
        with_layers(1000), BrokenLevel::config);
}

}  // namespace

void write_tiny_llama_config(const fs::path& dir, const std::string& architecture) {
  // The fields of fixtures/models/llama-tiny-random/config.json, shrunk.
  const nlohmann::json config = {
      {"architectures", nlohmann::json::array({architecture})},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
      {"hidden_act", "silu"},
      {"hidden_size", 8},
      {"initializer_range", 0.02},
      {"intermediate_size", 16},
      {"max_position_embeddings", 32},
      {"mlp_bias", false},
      {"model_type", "llama"},
      {"num_attention_heads", 2},
      {"num_hidden_layers", 1},
      {"num_key_value_heads", 1},
      {"pretraining_tp", 1},
      {"rms_norm_eps", 1e-05},
      {"rope_scaling", nullptr},
      {"rope_theta", 10000.0},
      {"tie_word_embeddings", false},
      {"torch_dtype", "float32"},
      {"use_cache", true},
      {"vocab_size", 16},
  };
  write_text(dir / "config.json", config.dump(2));
}

void write_tiny_llama(const fs::path& dir) {
  fs::create_directories(dir);
  write_tiny_llama_config(dir);
  write_tiny_weights(dir / "model.safetensors");
}

void write_tiny_llama_sharded(const fs::path& dir) {
  fs::create_directories(dir);
  write_tiny_llama_config(dir);
  write_index(dir, tiny_weight_map());
  for (const std::string shard : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"})
    write_tiny_weights(dir / shard, shard_tensors(shard));
}

std::vector<BrokenCase> make_broken_checkpoints(const fs::path& root) {
  Gallery gallery(root);
  add_framing_cases(gallery);
  add_header_cases(gallery);
  add_directory_cases(gallery);
  add_config_cases(gallery);
  return gallery.take();
}

}  // namespace strata::test
