// Loading a checkpoint and running it: the public entry points of strata.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "strata/model_config.h"

namespace strata {

struct ModelOptions {
  int threads = 0;  // 0: one per hardware core
  // Copy the weights into host RAM at load (huge pages: the fastest reads),
  // rather than reading them from the memory-mapped files.
  bool weights_in_ram = true;
};

class Session;

// A loaded model: config, weights (memory-mapped), the compute context.
// Thread-safety: one thread at a time runs a model and its sessions.
class Model {
 public:
  // Reads DIR/config.json, generation_config.json and the safetensors weights.
  // Throws strata::Error for anything missing, malformed or unsupported.
  static std::unique_ptr<Model> load(const std::filesystem::path& dir, const ModelOptions& options = {});
  ~Model();

  const ModelConfig& config() const;
  const GenerationConfig& generation_config() const;
  const std::filesystem::path& dir() const;
  int threads() const;
  double load_seconds() const;
  // Bytes of weights one decode step reads.
  uint64_t weight_bytes_per_token() const;
  uint64_t checkpoint_bytes() const;

  // Logits of one no-cache forward over `rows` sequences of `tokens` ids each
  // (row-major), shape [rows, tokens, vocab].
  std::vector<float> logits(std::span<const int32_t> ids, int64_t rows, int64_t tokens);

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Incremental decoding of `rows` sequences that advance together, with a KV
// cache allocated once for `capacity` tokens per row.
class Session {
 public:
  Session(Model& model, int64_t rows, int64_t capacity);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Appends `tokens` ids to every row (ids is rows x tokens, row-major) and
  // returns logits: [rows, vocab] for each row's last position, or
  // [rows, tokens, vocab] with all_positions. Valid until the next call.
  std::span<const float> feed(std::span<const int32_t> ids, int64_t tokens, bool all_positions = false);

  int64_t length() const;
  int64_t capacity() const;
  int64_t rows() const;
  // Forgets the context (keeps the memory).
  void reset();

 private:
  struct State;
  Model& model_;
  std::unique_ptr<State> state_;
};

}  // namespace strata
