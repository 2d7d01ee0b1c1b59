#include "logits_io.h"

#include <algorithm>
#include <cstring>
#include <span>

#include "format/safetensors.h"
#include "strata/error.h"

namespace strata::cli {

std::vector<int32_t> read_input_ids(const std::string& path, int64_t& rows, int64_t& tokens) {
  SafetensorsFile file(path);
  const TensorInfo* info = nullptr;
  for (const auto& t : file.tensors())
    if (t.name == "input_ids") info = &t;
  if (!info) throw Error("no tensor named input_ids", path, "", "the input must hold int64 input_ids [B, T]");
  if (info->dtype != DType::I64 && info->dtype != DType::I32)
    throw Error("input_ids must be I64 or I32, not " + std::string(dtype_name(info->dtype)), path, "input_ids");
  if (info->shape.size() == 2) {
    rows = info->shape[0];
    tokens = info->shape[1];
  } else if (info->shape.size() == 1) {
    rows = 1;
    tokens = info->shape[0];
  } else {
    throw Error("input_ids must have shape [B, T] or [T]", path, "input_ids");
  }
  if (rows <= 0 || tokens <= 0) throw Error("input_ids is empty", path, "input_ids");
  const auto bytes = file.data(*info);
  std::vector<int32_t> ids(static_cast<size_t>(rows * tokens));
  for (size_t i = 0; i < ids.size(); ++i) {
    int64_t v = 0;
    if (info->dtype == DType::I64) {
      std::memcpy(&v, bytes.data() + i * 8, 8);
    } else {
      int32_t v32 = 0;
      std::memcpy(&v32, bytes.data() + i * 4, 4);
      v = v32;
    }
    if (v < 0 || v > INT32_MAX) throw Error("token id " + std::to_string(v) + " is out of range", path, "input_ids");
    ids[i] = static_cast<int32_t>(v);
  }
  return ids;
}

namespace {

const TensorInfo* find_tensor(const SafetensorsFile& file, const std::string& name) {
  for (const auto& t : file.tensors())
    if (t.name == name) return &t;
  return nullptr;
}

}  // namespace

bool has_logits(const std::string& path) { return find_tensor(SafetensorsFile(path), "logits") != nullptr; }

std::vector<float> read_logits(const std::string& path, size_t expected) {
  SafetensorsFile file(path);
  const TensorInfo* info = find_tensor(file, "logits");
  if (!info) throw Error("no tensor named logits", path, "", "the reference must hold float32 logits [B, T, V]");
  if (info->dtype != DType::F32)
    throw Error("logits must be F32, not " + std::string(dtype_name(info->dtype)), path, "logits");
  if (static_cast<size_t>(info->numel()) != expected)
    throw Error("logits has shape " + shape_string(info->shape) + ", which does not hold " + std::to_string(expected) +
                    " values (rows x tokens x vocab of the input and model)", path, "logits");
  std::vector<float> logits(expected);
  std::memcpy(logits.data(), file.data(*info).data(), expected * sizeof(float));
  return logits;
}

std::vector<float> full_forward_logits(Model& model, const std::vector<int32_t>& ids, int64_t rows, int64_t tokens) {
  const int64_t vocab = model.config().vocab_size;
  std::vector<float> logits(static_cast<size_t>(rows * tokens * vocab));
  for (int64_t r = 0; r < rows; ++r) {
    const auto row = model.logits(std::span<const int32_t>(ids).subspan(static_cast<size_t>(r * tokens),
                                                                         static_cast<size_t>(tokens)),
                                  1, tokens);
    std::copy(row.begin(), row.end(), logits.begin() + r * tokens * vocab);
  }
  return logits;
}

}  // namespace strata::cli
