// Pre-quantized checkpoints as their libraries store them: which method and
// parameters config.json's `quantization_config` (or AutoGPTQ's
// quantize_config.json) names, and, per Linear, the stored tensors that make
// up its weight, checked against that before anything is loaded.
//
//   gptq (AutoGPTQ; checkpoint_format gptq = v1, which stores zero - 1, or
//        gptq_v2): qweight, qzeros, scales, g_idx; 4 or 8 bits, any group size
//        (-1: one group), desc_act with g_idx, sym or asym
//   awq (AutoAWQ, version gemm): qweight, qzeros, scales; 4 bits, zero points
//   compressed-tensors (format pack-quantized): weight_packed, weight_scale,
//        weight_shape, weight_zero_point when asymmetric; int 4 or 8 bits,
//        strategy group or channel, weight-only
//   fp8 (DeepSeek-V3's fine-grained layout): weight as F8_E4M3 and
//        weight_scale_inv per weight_block_size block
// Everything else the config names (a method, a bit width, a strategy strata
// does not read) is a one-line strata::Error before loading.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "format/safetensors.h"
#include "quant/repack.h"

namespace strata {

struct QuantScheme {
  QuantMethod method = QuantMethod::gptq;
  QuantLayout layout;  // scale_dtype as the checkpoint stores scales
};

// The scheme of the checkpoint in dir, or nullopt when it is not quantized.
// Throws strata::Error naming the config file for what strata cannot read.
std::optional<QuantScheme> read_quant_scheme(const std::filesystem::path& dir, const Checkpoint& checkpoint);

// The stored tensors of one quantized matrix.
struct QuantizedTensors {
  const TensorInfo* codes = nullptr;
  const TensorInfo* scales = nullptr;
  const TensorInfo* zeros = nullptr;        // when the layout stores zeros
  const TensorInfo* group_index = nullptr;  // GPTQ's g_idx, when stored
  // Bytes of every stored tensor of this matrix (weight_shape included).
  uint64_t stored_bytes = 0;
};

// For the matrix weight `weight_name` ("model.layers.0.mlp.up_proj.weight",
// [rows, cols] = [out, in]): its quantized tensors, or nullopt when the
// checkpoint holds it unquantized (an embedding, a head, an ignored module).
// Throws strata::Error naming the tensor when a stored tensor has the wrong
// dtype or shape, or a group index is out of range.
std::optional<QuantizedTensors> find_quantized(const Checkpoint& checkpoint, const QuantScheme& scheme,
                                               const std::string& weight_name, int64_t rows, int64_t cols);

// Whether the checkpoint stores the matrix weight `weight_name` quantized: a
// look at the tensor names (and FP8's dtype) only, nothing checked.
bool stored_quantized_matrix(const Checkpoint& checkpoint, const QuantScheme& scheme, const std::string& weight_name);

// The tensors' bytes, as repack_rows reads them.
StoredQuantized stored_quantized(const Checkpoint& checkpoint, const QuantizedTensors& tensors);

}  // namespace strata
