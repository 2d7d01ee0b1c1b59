// Text generation: greedy or sampled decoding with stop conditions.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "strata/model.h"

namespace strata {

// transformers' sampling semantics: logits / temperature, then top-k, then
// top-p (smallest set whose probability reaches top_p), then a draw.
struct SamplingOptions {
  double temperature = 0.0;  // 0: greedy (argmax)
  int64_t top_k = 0;         // 0: off
  double top_p = 1.0;        // 1: off
  uint64_t seed = 0;
};

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  SamplingOptions sampling;
  std::vector<int32_t> eos_ids;  // stop after producing any of these
};

struct GenerateResult {
  std::vector<int32_t> new_ids;
  bool stopped_on_eos = false;
  double prompt_seconds = 0;    // prefill of the prompt, up to the first new token's logits
  double generate_seconds = 0;  // the decode steps after that
  int64_t prompt_tokens = 0;
};

// Generates from `prompt` (one sequence). on_token is called with each new id
// as soon as it is chosen (for streaming output).
GenerateResult generate(Model& model, std::span<const int32_t> prompt, const GenerateOptions& options,
                        const std::function<void(int32_t)>& on_token = {});

struct BatchGenerateResult {
  std::vector<GenerateResult> rows;  // one per prompt, in order
  double prompt_seconds = 0;         // all prompts, fed together
  double generate_seconds = 0;       // the decode steps after that
  int64_t decode_tokens = 0;         // new tokens produced by those steps, all rows together
};

// Generates for several prompts at once: each decode step is one pass over
// the weights for every row, so streamed weights are read once per step for
// the whole batch (FlexGen's insight). Each row stops at its own EOS or at
// max_new_tokens; row r samples with seed options.sampling.seed + r, and with
// greedy decoding gives exactly what generate() gives for its prompt alone.
BatchGenerateResult generate_batch(Model& model, const std::vector<std::vector<int32_t>>& prompts,
                                   const GenerateOptions& options);

// Picks the next token from one row of logits.
class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  int32_t pick(std::span<const float> logits);

 private:
  SamplingOptions options_;
  uint64_t state_;
  std::vector<std::pair<float, int32_t>> candidates_;
  std::vector<double> probs_;
  double next_uniform();
};

}  // namespace strata
