// A gallery of damaged model directories, made on the fly, for tests that
// check every failure is a clean strata::Error (library level) or a one-line
// message and a non-zero exit (CLI level).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace strata::test {

// Which layer is expected to notice the damage.
enum class BrokenLevel {
  weights,  // safetensors files or the shard index: Checkpoint::open must throw
  config,   // config.json: the weights are valid, the model config is not
};

struct BrokenCase {
  std::string name;               // short id, e.g. "truncated_data"
  std::filesystem::path dir;      // a model directory: config.json plus weights
  std::string expected;           // a phrase the error message must contain
  std::string expected_file;      // the file (or directory) name the message must contain
  BrokenLevel level = BrokenLevel::weights;
};

// The tiny Llama every case is built from (hidden 8, 1 layer, 2 heads, 1 kv
// head, vocab 16, F32, untied head). Exposed so tests can check the base is
// valid and so the damage, not the model, is what each case tests.
void write_tiny_llama_config(const std::filesystem::path& dir, const std::string& architecture =
                                                                   "LlamaForCausalLM");
void write_tiny_llama(const std::filesystem::path& dir);          // config + model.safetensors
void write_tiny_llama_sharded(const std::filesystem::path& dir);  // config + 2 shards + index

// Creates one model directory per case under root and returns the cases.
std::vector<BrokenCase> make_broken_checkpoints(const std::filesystem::path& root);

}  // namespace strata::test
