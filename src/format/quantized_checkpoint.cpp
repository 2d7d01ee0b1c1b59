#include "format/quantized_checkpoint.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "core/files.h"
#include "strata/error.h"

namespace strata {
namespace {

using Json = nlohmann::json;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A config value of the expected JSON type, or `fallback` when absent or null.
template <typename T>
T value_or(const Json& j, const std::string& key, T fallback, const std::string& file) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const Json::exception&) {
    throw Error("quantization_config." + key + " has the wrong type (" + it->dump() + ")", file);
  }
}

[[noreturn]] void unsupported(const std::string& what, const std::string& file, const std::string& hint) {
  throw Error(what + " is not supported", file, "", hint);
}

// GPTQ: {"bits", "group_size", "desc_act", "sym", "checkpoint_format"}.
QuantScheme gptq_scheme(const Json& q, const std::string& file) {
  QuantScheme s;
  s.method = QuantMethod::gptq;
  const int bits = value_or<int>(q, "bits", 4, file);
  if (bits != 4 && bits != 8) {
    if (bits == 2 || bits == 3) unsupported("GPTQ " + std::to_string(bits) + "-bit", file, "strata reads GPTQ 4- and 8-bit weights");
    throw Error("GPTQ has no " + std::to_string(bits) + "-bit format", file, "", "bits is 2, 3, 4 or 8");
  }
  const int64_t group = value_or<int64_t>(q, "group_size", 128, file);
  if (group == 0 || group < -1) throw Error("GPTQ group_size " + std::to_string(group) + " is invalid", file, "", "use -1 or a positive size");
  const std::string format = value_or<std::string>(q, "checkpoint_format", value_or<std::string>(q, "format", "gptq", file), file);
  if (format != "gptq" && format != "gptq_v2")
    unsupported("GPTQ checkpoint_format '" + format + "'", file, "strata reads gptq (v1) and gptq_v2 checkpoints");
  s.layout.bits = bits;
  s.layout.group_size = group > 0 ? group : 0;
  s.layout.stored_zeros = true;
  s.layout.zero_offset = format == "gptq" ? 1 : 0;  // v1 stores zero - 1
  s.layout.group_index = value_or<bool>(q, "desc_act", false, file);
  s.layout.name = "GPTQ int" + std::to_string(bits) + (group > 0 ? " g" + std::to_string(group) : " per-row") +
                  (s.layout.group_index ? " desc_act" : "");
  return s;
}

// AutoAWQ's GEMM layout: {"bits"|"w_bit", "group_size"|"q_group_size", "zero_point", "version"}.
QuantScheme awq_scheme(const Json& q, const std::string& file) {
  QuantScheme s;
  s.method = QuantMethod::awq;
  const int bits = value_or<int>(q, "bits", value_or<int>(q, "w_bit", 4, file), file);
  if (bits != 4) throw Error("AWQ has no " + std::to_string(bits) + "-bit format", file, "", "AWQ stores 4-bit weights");
  std::string version = value_or<std::string>(q, "version", "gemm", file);
  for (char& c : version) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (version != "gemm") unsupported("AWQ version '" + version + "'", file, "strata reads AWQ's gemm layout");
  if (!value_or<bool>(q, "zero_point", true, file)) unsupported("AWQ without zero points", file, "use a zero_point checkpoint");
  const int64_t group = value_or<int64_t>(q, "group_size", value_or<int64_t>(q, "q_group_size", 128, file), file);
  if (group <= 0) throw Error("AWQ group_size " + std::to_string(group) + " is invalid", file, "", "use a positive size");
  s.layout.bits = 4;
  s.layout.group_size = group;
  s.layout.stored_zeros = true;
  s.layout.name = "AWQ int4 g" + std::to_string(group);
  return s;
}

// compressed-tensors: one config group of weight-only int quantization of Linear layers.
QuantScheme compressed_tensors_scheme(const Json& q, const std::string& file) {
  QuantScheme s;
  s.method = QuantMethod::compressed_tensors;
  const std::string hint = "strata reads pack-quantized int4/int8 weight-only checkpoints";
  const auto groups = q.find("config_groups");
  if (groups == q.end() || !groups->is_object() || groups->size() != 1)
    unsupported("a compressed-tensors config without exactly one config group", file, hint);
  const Json& group = groups->begin().value();
  const std::string format = value_or<std::string>(group, "format", value_or<std::string>(q, "format", "", file), file);
  if (format != "pack-quantized") unsupported("compressed-tensors format '" + format + "'", file, hint);
  if (group.contains("input_activations") && !group["input_activations"].is_null())
    unsupported("compressed-tensors activation quantization", file, hint);
  const auto weights = group.find("weights");
  if (weights == group.end() || !weights->is_object()) throw Error("compressed-tensors config group has no weights", file);
  const int bits = value_or<int>(*weights, "num_bits", 0, file);
  if (bits != 4 && bits != 8) unsupported("compressed-tensors " + std::to_string(bits) + "-bit weights", file, hint);
  if (value_or<std::string>(*weights, "type", "int", file) != "int") unsupported("compressed-tensors float weights", file, hint);
  const std::string strategy = value_or<std::string>(*weights, "strategy", "", file);
  const int64_t group_size = value_or<int64_t>(*weights, "group_size", 0, file);
  if (strategy == "group" && group_size <= 0) throw Error("compressed-tensors group strategy without a group_size", file);
  if (strategy != "group" && strategy != "channel") unsupported("compressed-tensors strategy '" + strategy + "'", file, hint);
  const Json actorder = weights->value("actorder", Json());
  if (!actorder.is_null() && actorder != false) unsupported("compressed-tensors actorder", file, hint);
  s.layout.bits = bits;
  s.layout.group_size = strategy == "group" ? group_size : 0;
  s.layout.stored_zeros = !value_or<bool>(*weights, "symmetric", true, file);
  s.layout.name = "compressed-tensors int" + std::to_string(bits) +
                  (strategy == "group" ? " g" + std::to_string(group_size) : " per-row");
  return s;
}

// Fine-grained FP8: {"fmt": "e4m3", "weight_block_size": [rows, cols]}.
QuantScheme fp8_scheme(const Json& q, const std::string& file) {
  QuantScheme s;
  s.method = QuantMethod::fp8;
  const std::string fmt = value_or<std::string>(q, "fmt", "e4m3", file);
  if (fmt != "e4m3") unsupported("FP8 format '" + fmt + "'", file, "strata reads e4m3 weights");
  const auto block = q.find("weight_block_size");
  if (block == q.end() || !block->is_array() || block->size() != 2 || !(*block)[0].is_number_integer() ||
      !(*block)[1].is_number_integer() || (*block)[0].get<int64_t>() <= 0 || (*block)[1].get<int64_t>() <= 0)
    unsupported("FP8 without a weight_block_size of two positive sizes", file, "strata reads block-scaled FP8 (DeepSeek-V3's layout)");
  s.layout.kind = QuantKind::fp8_block;
  s.layout.bits = 8;
  s.layout.scale_dtype = DType::F32;
  s.layout.block_rows = (*block)[0].get<int64_t>();
  s.layout.block_cols = (*block)[1].get<int64_t>();
  s.layout.name = "FP8 e4m3 " + std::to_string(s.layout.block_rows) + "x" + std::to_string(s.layout.block_cols);
  return s;
}

// The suffix of the tensor that holds a quantized Linear's scales.
const char* scales_suffix(QuantMethod m) {
  switch (m) {
    case QuantMethod::gptq:
    case QuantMethod::awq: return ".scales";
    case QuantMethod::compressed_tensors: return ".weight_scale";
    case QuantMethod::fp8: return ".weight_scale_inv";
  }
  return "";
}

void expect(const Checkpoint& c, const TensorInfo& t, std::initializer_list<DType> dtypes,
            const std::vector<int64_t>& shape, const std::string& what) {
  bool dtype_ok = false;
  for (DType d : dtypes) dtype_ok = dtype_ok || t.dtype == d;
  std::string allowed;
  for (DType d : dtypes) allowed += (allowed.empty() ? "" : " or ") + std::string(dtype_name(d));
  if (!dtype_ok)
    throw Error(what + " is " + std::string(dtype_name(t.dtype)) + ", expected " + allowed, c.dir().string(), t.name,
                "the checkpoint does not match its quantization_config");
  if (t.shape != shape)
    throw Error(what + " has shape " + shape_string(t.shape) + ", expected " + shape_string(shape), c.dir().string(),
                t.name, "the checkpoint does not match its quantization_config and config.json");
}

const TensorInfo& part(const Checkpoint& c, const std::string& prefix, const char* suffix) {
  const TensorInfo* t = c.find(prefix + suffix);
  if (!t)
    throw Error("a quantized Linear lacks its " + std::string(suffix + 1) + " tensor", c.dir().string(), prefix + suffix,
                "the checkpoint is incomplete");
  return *t;
}

int32_t int32_at(std::span<const uint8_t> data, size_t i) {
  int32_t v;
  std::memcpy(&v, data.data() + i * 4, 4);
  return v;
}

// g_idx: every entry a group in range; without desc_act, exactly column / group_size.
void check_group_index(const Checkpoint& c, const TensorInfo& t, const QuantLayout& l, int64_t cols, int64_t groups) {
  const auto data = c.data(t);
  for (int64_t i = 0; i < cols; ++i) {
    const int32_t g = int32_at(data, static_cast<size_t>(i));
    if (g < 0 || g >= groups)
      throw Error("g_idx[" + std::to_string(i) + "] = " + std::to_string(g) + " is out of range [0, " +
                      std::to_string(groups) + ")", c.dir().string(), t.name, "the checkpoint is damaged");
    const int64_t in_order = l.group_size > 0 ? i / l.group_size : 0;
    if (!l.group_index && g != in_order)
      throw Error("g_idx is not in column order but desc_act is false", c.dir().string(), t.name,
                  "set desc_act true in the quantization config");
  }
}

}  // namespace

std::optional<QuantScheme> read_quant_scheme(const std::filesystem::path& dir, const Checkpoint& checkpoint) {
  std::filesystem::path file = dir / "config.json";
  Json q;
  try {
    const Json config = Json::parse(read_file(file, "config.json"));
    if (config.contains("quantization_config")) q = config["quantization_config"];
  } catch (const Json::exception& e) {
    throw Error(std::string("config.json is not valid JSON: ") + e.what(), file.string());
  }
  if (q.is_null() && std::filesystem::exists(dir / "quantize_config.json")) {
    file = dir / "quantize_config.json";
    try {
      q = Json::parse(read_file(file, "quantize_config.json"));
    } catch (const Json::exception& e) {
      throw Error(std::string("not valid JSON: ") + e.what(), file.string());
    }
    if (!q.contains("quant_method")) q["quant_method"] = "gptq";  // AutoGPTQ's own file
  }
  if (q.is_null()) return std::nullopt;
  if (!q.is_object()) throw Error("quantization_config is not an object", file.string());
  const std::string method = value_or<std::string>(q, "quant_method", "", file.string());
  QuantScheme s;
  if (method == "gptq")
    s = gptq_scheme(q, file.string());
  else if (method == "awq")
    s = awq_scheme(q, file.string());
  else if (method == "compressed-tensors")
    s = compressed_tensors_scheme(q, file.string());
  else if (method == "fp8")
    s = fp8_scheme(q, file.string());
  else
    throw Error("quantization method '" + method + "' is not supported", file.string(), "",
                "strata reads gptq, awq, compressed-tensors and fp8 checkpoints");
  // Scales are held as stored: the first quantized Linear's dtype, which every other must share.
  if (s.method != QuantMethod::fp8) {
    const std::string suffix = scales_suffix(s.method);
    for (const TensorInfo& t : checkpoint.tensors())
      if (t.name.size() > suffix.size() && t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        s.layout.scale_dtype = t.dtype;
        break;
      }
    if (!is_float(s.layout.scale_dtype) || s.layout.scale_dtype == DType::F64)
      throw Error("scales stored as " + std::string(dtype_name(s.layout.scale_dtype)) + " are not supported",
                  checkpoint.dir().string(), "", "scales are F32, F16 or BF16");
  }
  return s;
}

bool stored_quantized_matrix(const Checkpoint& c, const QuantScheme& scheme, const std::string& weight_name) {
  const std::string suffix = ".weight";
  if (weight_name.size() <= suffix.size() || weight_name.compare(weight_name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  const std::string prefix = weight_name.substr(0, weight_name.size() - suffix.size());
  switch (scheme.method) {
    case QuantMethod::fp8: {
      const TensorInfo* w = c.find(weight_name);
      return w && w->dtype == DType::F8_E4M3;
    }
    case QuantMethod::gptq:
    case QuantMethod::awq: return !c.find(weight_name) && c.find(prefix + ".qweight");
    case QuantMethod::compressed_tensors: return !c.find(weight_name) && c.find(prefix + ".weight_packed");
  }
  return false;
}

std::optional<QuantizedTensors> find_quantized(const Checkpoint& c, const QuantScheme& scheme,
                                               const std::string& weight_name, int64_t rows, int64_t cols) {
  if (!stored_quantized_matrix(c, scheme, weight_name)) return std::nullopt;
  const std::string prefix = weight_name.substr(0, weight_name.size() - std::string(".weight").size());
  const QuantLayout& l = scheme.layout;
  QuantizedTensors q;
  const DType scale_dtype = l.scale_dtype;
  switch (scheme.method) {
    case QuantMethod::fp8: {
      q.codes = c.find(weight_name);
      q.scales = &part(c, prefix, ".weight_scale_inv");
      expect(c, *q.codes, {DType::F8_E4M3}, {rows, cols}, "the FP8 weight");
      expect(c, *q.scales, {DType::F32}, {ceil_div(rows, l.block_rows), ceil_div(cols, l.block_cols)},
             "weight_scale_inv (one per " + std::to_string(l.block_rows) + "x" + std::to_string(l.block_cols) + " block)");
      break;
    }
    case QuantMethod::gptq: {
      const int64_t per_word = 32 / l.bits;
      if (cols % per_word != 0 || rows % per_word != 0)
        throw Error("a [" + std::to_string(rows) + ", " + std::to_string(cols) + "] matrix cannot be GPTQ-packed " +
                        std::to_string(per_word) + " values per word", c.dir().string(), prefix + ".qweight");
      const int64_t groups = l.group_size > 0 ? ceil_div(cols, l.group_size) : 1;
      q.codes = &part(c, prefix, ".qweight");
      q.zeros = &part(c, prefix, ".qzeros");
      q.scales = &part(c, prefix, ".scales");
      expect(c, *q.codes, {DType::I32}, {cols / per_word, rows}, "qweight");
      expect(c, *q.zeros, {DType::I32}, {groups, rows / per_word}, "qzeros");
      expect(c, *q.scales, {scale_dtype}, {groups, rows}, "scales");
      if (const TensorInfo* g = c.find(prefix + ".g_idx")) {
        expect(c, *g, {DType::I32}, {cols}, "g_idx");
        check_group_index(c, *g, l, cols, groups);
        if (l.group_index) q.group_index = g;
      } else if (l.group_index) {
        part(c, prefix, ".g_idx");  // desc_act needs it: throws naming it
      }
      break;
    }
    case QuantMethod::awq: {
      if (rows % 8 != 0 || cols % l.group_size != 0)
        throw Error("a [" + std::to_string(rows) + ", " + std::to_string(cols) + "] matrix cannot be AWQ-packed in groups of " +
                        std::to_string(l.group_size), c.dir().string(), prefix + ".qweight");
      q.codes = &part(c, prefix, ".qweight");
      q.zeros = &part(c, prefix, ".qzeros");
      q.scales = &part(c, prefix, ".scales");
      expect(c, *q.codes, {DType::I32}, {cols, rows / 8}, "qweight");
      expect(c, *q.zeros, {DType::I32}, {cols / l.group_size, rows / 8}, "qzeros");
      expect(c, *q.scales, {scale_dtype}, {cols / l.group_size, rows}, "scales");
      break;
    }
    case QuantMethod::compressed_tensors: {
      const int64_t per_word = 32 / l.bits;
      const int64_t groups = l.group_size > 0 ? ceil_div(cols, l.group_size) : 1;
      q.codes = &part(c, prefix, ".weight_packed");
      q.scales = &part(c, prefix, ".weight_scale");
      expect(c, *q.codes, {DType::I32}, {rows, ceil_div(cols, per_word)}, "weight_packed");
      expect(c, *q.scales, {scale_dtype}, {rows, groups}, "weight_scale");
      if (l.stored_zeros) {
        q.zeros = &part(c, prefix, ".weight_zero_point");
        expect(c, *q.zeros, {DType::I32}, {ceil_div(rows, per_word), groups}, "weight_zero_point");
      }
      if (const TensorInfo* shape = c.find(prefix + ".weight_shape")) {
        expect(c, *shape, {DType::I64}, {2}, "weight_shape");
        int64_t stored[2];
        std::memcpy(stored, c.data(*shape).data(), sizeof stored);
        if (stored[0] != rows || stored[1] != cols)
          throw Error("weight_shape says [" + std::to_string(stored[0]) + ", " + std::to_string(stored[1]) +
                          "], config.json implies [" + std::to_string(rows) + ", " + std::to_string(cols) + "]",
                      c.dir().string(), shape->name, "config.json and weights disagree");
        q.stored_bytes += shape->nbytes;
      }
      break;
    }
  }
  for (const TensorInfo* t : {q.codes, q.scales, q.zeros, q.group_index})
    if (t) q.stored_bytes += t->nbytes;
  if (scheme.method == QuantMethod::gptq)
    if (const TensorInfo* g = c.find(prefix + ".g_idx"); g && !q.group_index) q.stored_bytes += g->nbytes;
  return q;
}

StoredQuantized stored_quantized(const Checkpoint& c, const QuantizedTensors& t) {
  const auto part_of = [&](const TensorInfo* info) {
    return info ? StoredPart{info->dtype, info->shape, c.data(*info).data()} : StoredPart{};
  };
  return {part_of(t.codes), part_of(t.scales), part_of(t.zeros), part_of(t.group_index)};
}

}  // namespace strata
