// Reading input ids and logits files, and the full-forward logits of input
// ids, shared by `strata logits` and `strata kld`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "strata/model.h"

namespace strata::cli {

// Reads the tensor input_ids (I64 or I32, [B, T] or [T]) of a safetensors
// file as int32 rows. Throws strata::Error naming the file for anything else.
std::vector<int32_t> read_input_ids(const std::string& path, int64_t& rows, int64_t& tokens);

// Whether the file holds a tensor `logits`, and its values (float32, of
// `expected` elements; throws strata::Error naming the file otherwise).
bool has_logits(const std::string& path);
std::vector<float> read_logits(const std::string& path, size_t expected);

// The logits of every position, [rows, tokens, vocab]: one full forward per
// row, as transformers computes model(input_ids).
std::vector<float> full_forward_logits(Model& model, const std::vector<int32_t>& ids, int64_t rows, int64_t tokens);

}  // namespace strata::cli
